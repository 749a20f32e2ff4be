/* watchkeeper dashboard: draws the server's figures and makes the filters submit on change.
   Figures arrive as JSON in <script type="application/json"> blocks (data, never code). When
   every figure is drawn, <body data-plots="N"> tells tests and tools the page is ready. */
(function () {
  "use strict";
  var config = {displaylogo: false, responsive: true,
                modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"]};

  function figure(id) {
    var src = document.getElementById(id);
    return src ? JSON.parse(src.textContent) : null;
  }

  function goToWindow(event) {
    var point = event && event.points && event.points[0];
    if (!point || point.customdata === undefined || point.customdata === null) return;
    var url = new URL(window.location.href);
    url.searchParams.set("window", String(point.customdata));
    window.location.assign(url.toString());
  }

  function drawAll() {
    var plots = document.querySelectorAll(".plot[data-figure]");
    var pending = [];
    plots.forEach(function (el) {
      var fig = figure(el.dataset.figure);
      if (!fig || typeof Plotly === "undefined") return;
      pending.push(Plotly.newPlot(el, fig.data, fig.layout, config).then(function (gd) {
        if (el.dataset.click === "window") gd.on("plotly_click", goToWindow);
        return gd;
      }));
    });
    Promise.all(pending).then(function () {
      document.body.dataset.plots = String(pending.length);
    });
  }

  function autoSubmit() {
    document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
      form.querySelectorAll("select").forEach(function (select) {
        select.addEventListener("change", function () {
          if (select.name === "range") {
            form.querySelectorAll("input[name=start], input[name=end]").forEach(function (i) {
              i.value = "";
            });
          }
          form.submit();
        });
      });
    });
  }

  function start() {
    autoSubmit();
    drawAll();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
