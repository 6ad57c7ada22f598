// The playground's socket (ws/tenants/<slug>/playground/): sends a prompt, shows the answer as
// its tokens arrive, then what the request cost (from its usage record). Refusals (a model off
// the plan, the spend cap, the rate limit) arrive as messages written for people.
(function () {
  "use strict";

  const form = document.getElementById("playground-form");
  if (!form) return;
  const runButton = document.getElementById("playground-run");
  const stopButton = document.getElementById("playground-stop");
  const status = document.getElementById("playground-status");
  const output = document.getElementById("playground-output");
  const errorBox = document.getElementById("playground-error");
  const cost = document.getElementById("playground-cost");
  let socket = null;
  let running = false;
  let retryDelay = 1000;

  function setRunning(value) {
    running = value;
    runButton.disabled = value || !socket || socket.readyState !== WebSocket.OPEN;
    stopButton.disabled = !value;
    form.dataset.state = value ? "running" : "idle";
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function handle(message) {
    switch (message.type) {
      case "started":
        status.textContent = "Answering with " + message.model + "…";
        break;
      case "token":
        output.textContent += message.text;
        break;
      case "finish":
        if (message.reason === "length") status.textContent = "Stopped at the max tokens.";
        break;
      case "error":
        showError(message.message);
        if (message.code === "busy") return;
        status.textContent = "Failed.";
        setRunning(false);
        break;
      case "done":
        cost.hidden = false;
        cost.textContent = (message.stopped ? "Stopped. " : "") + message.input_tokens + " tokens in, " +
          message.output_tokens + " out: cost " + message.cost_display + " (request " + message.request_id + ").";
        cost.dataset.cost = message.cost;
        if (status.textContent.indexOf("Failed") !== 0) status.textContent = message.stopped ? "Stopped." : "Done.";
        setRunning(false);
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + form.dataset.socketPath);
    socket.addEventListener("open", function () {
      retryDelay = 1000;
      status.textContent = "Ready.";
      setRunning(false);
    });
    socket.addEventListener("message", function (event) { handle(JSON.parse(event.data)); });
    socket.addEventListener("close", function () {
      if (running) showError("The connection closed during the answer; what was produced is billed.");
      setRunning(false);
      runButton.disabled = true;
      status.textContent = "Disconnected; reconnecting…";
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (running || !socket || socket.readyState !== WebSocket.OPEN) return;
    output.textContent = "";
    errorBox.hidden = true;
    cost.hidden = true;
    status.textContent = "Sending…";
    setRunning(true);
    socket.send(JSON.stringify({
      action: "run",
      model: form.elements.model.value,
      prompt: form.elements.prompt.value,
      max_tokens: form.elements.max_tokens.value || null,
    }));
  });

  form.elements.prompt.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  stopButton.addEventListener("click", function () {
    if (running) socket.send(JSON.stringify({ action: "stop" }));
  });

  connect();
})();
