"""Serving models, monitored by construction: artifacts per version (``artifacts``), loading
them (``loaders``), the models in memory (``registry``), scoring a request into prediction
events (``predict``) and the Open Inference Protocol v2 (``oip``). See docs/serving.md."""
