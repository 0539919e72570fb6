// Shows the warnings the pack's nodes send with their results (ui.animatelcm_warnings): a toast in
// today's frontend, a dialog in frontends from before toasts, and a note in the browser's console.
import { app } from "../../scripts/app.js";

function show(message) {
  console.warn(`AnimateLCM: ${message}`);
  const toast = app.extensionManager?.toast;
  if (toast) {
    toast.add({ severity: "warn", summary: "AnimateLCM", detail: message, life: 20000 });
  } else {
    app.ui?.dialog?.show(message);
  }
}

app.registerExtension({
  name: "AnimateLCM.Warnings",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("ALCM_")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const result = onExecuted?.apply(this, arguments);
      for (const message of output?.animatelcm_warnings ?? []) show(message);
      return result;
    };
  },
});
