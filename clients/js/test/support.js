// Helpers of the client's tests: a real Bocadillo server (tests/clients/serve.py, a
// uvicorn on a port the kernel picked and held), waiting on conditions, and a recorder.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const TIMEOUT = 20000;
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const VENV_PYTHON = path.join(ROOT, ".venv", "bin", "python");
export const PYTHON =
  process.env.BOCADILLO_PYTHON || (existsSync(VENV_PYTHON) ? VENV_PYTHON : "python3");

/** Start the test app (tests/clients/app.py) with `settings`; stop it with `stop()`. */
export async function startServer(settings = {}) {
  const env = { ...process.env };
  delete env.PYTHONASYNCIODEBUG;
  const child = spawn(PYTHON, ["-m", "tests.clients.serve", JSON.stringify(settings)], {
    cwd: ROOT,
    env,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const answers = [];
  const waiting = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const value = JSON.parse(line);
    const wake = waiting.shift();
    if (wake) wake(value);
    else answers.push(value);
  });
  const next = () =>
    new Promise((resolve, reject) => {
      if (answers.length) return resolve(answers.shift());
      const timer = setTimeout(() => reject(new Error("the server did not answer")), TIMEOUT);
      waiting.push((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  const first = await next();
  const url = `http://127.0.0.1:${first.port}`;
  return {
    port: first.port,
    url,
    wsUrl: `ws://127.0.0.1:${first.port}/ws`,
    async command(name) {
      child.stdin.write(name + "\n");
      return next();
    },
    async post(where) {
      const response = await fetch(url + where, { method: "POST" });
      return response.json();
    },
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => process.kill(child.pid, "SIGKILL"), TIMEOUT);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Poll `check()` until it is truthy; fail after `timeout` ms (an upper bound). */
export async function eventually(check, what = String(check), timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() >= deadline) throw new Error(`not true within ${timeout} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Every message and connection event a client sees, in order. */
export function record(client) {
  const seen = { messages: [], events: [] };
  client.on("*", (data, message) => seen.messages.push(message));
  for (const name of ["connecting", "open", "closed", "reconnecting", "resumed"]) {
    client.onEvent(name, (detail) => seen.events.push([name, detail]));
  }
  seen.of = (type) => seen.messages.filter((message) => message.type === type);
  seen.event = (name) => seen.events.filter(([event]) => event === name).map(([, detail]) => detail);
  return seen;
}
