// Pieces shared by the browser scripts of spec/support/browser/: launching headless Chromium,
// the command line, and the checks, printed one JSON line each,
//   {"check":"name","ok":true,"detail":"..."}
// and the last line {"done":true,"passed":N,"failed":M} (read by spec/support/node_checks.lua).
'use strict';

const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Headless Chromium at executablePath; every wait of the launch bounded by timeout (ms).
// Playwright gives every launch a fresh, empty profile directory of its own.
function launch(chromium, executablePath, timeout) {
  return chromium.launch({ executablePath, headless: true, timeout, args: CHROMIUM_FLAGS });
}

// "--name value" pairs over the defaults (only their names are taken); --server is required.
function parseArgs(argv, defaults) {
  const args = Object.assign({}, defaults);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in args) || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    args[key] = argv[i + 1];
  }
  if (!args.server) throw new Error('--server "command" is required');
  return args;
}

const results = [];
function report(check, ok, detail) {
  const line = { check, ok: !!ok, detail: detail === undefined ? '' : String(detail) };
  results.push(line);
  console.log(JSON.stringify(line));
}

// Runs one check: passed with fn's result as its detail, or failed with the first line of the error.
async function check(name, fn) {
  try {
    report(name, true, await fn());
    return true;
  } catch (err) {
    report(name, false, (err && err.message ? err.message : String(err)).split('\n')[0]);
    return false;
  }
}

// Prints the done line; returns the number of failed checks.
function summary() {
  const failed = results.filter((r) => !r.ok).length;
  console.log(JSON.stringify({ done: true, passed: results.length - failed, failed }));
  return failed;
}

module.exports = { launch, parseArgs, report, check, summary };
