"""Champion and challengers on live traffic: the promotion policy (``policy``), shadow
scoring off the response path (``shadow``), canary routing (``router``) and the verdict job
that compares a challenger with the champion on the same labelled requests (``verdict``)."""
