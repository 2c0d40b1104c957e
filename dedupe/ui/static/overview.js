// The overview's two charts (Chart.js, vendored: scripts/vendor-chartjs.sh). The data
// comes with the page (a JSON script block); nothing is fetched.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  function human(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n.toFixed(0)) + " " + units[i];
  }
  var bytesAxis = { beginAtZero: true, ticks: { callback: function (v) { return human(v); } } };
  var tooltip = { callbacks: { label: function (c) { return c.dataset.label + ": " + human(c.chart.options.indexAxis === "y" ? c.parsed.x : c.parsed.y); } } };
  Chart.defaults.animation = false;
  window.dedupeCharts = [];
  window.dedupeCharts.push(new Chart(document.getElementById("chart-nightly"), {
    data: {
      labels: data.nightly.labels,
      datasets: [
        { type: "bar", label: "new data stored", data: data.nightly.new, backgroundColor: "#6fa3ff", yAxisID: "y" },
        { type: "line", label: "stored (running total)", data: data.nightly.stored, borderColor: "#17212f",
          backgroundColor: "#17212f", yAxisID: "y1", pointRadius: 2 }
      ]
    },
    options: { responsive: true, aspectRatio: 2.2, plugins: { tooltip: tooltip },
      scales: { y: Object.assign({ position: "left", title: { display: true, text: "per day" } }, bytesAxis),
                y1: Object.assign({ position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "total" } }, bytesAxis) } }
  }));
  window.dedupeCharts.push(new Chart(document.getElementById("chart-groups"), {
    type: "bar",
    data: {
      labels: data.groups.labels,
      datasets: [
        { label: "original", data: data.groups.original, backgroundColor: "#9fb0c6" },
        { label: "stored", data: data.groups.stored, backgroundColor: "#2c6bd6" }
      ]
    },
    options: { indexAxis: "y", responsive: true, aspectRatio: 2.2, plugins: { tooltip: tooltip }, scales: { x: bytesAxis } }
  }));
  document.body.setAttribute("data-charts", String(window.dedupeCharts.length));
})();
