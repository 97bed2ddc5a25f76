#!/usr/bin/env node
// A stand-in for a native `solc` executable, backed by solc-js (the same compiler built to
// WebAssembly). py-solc-x, and so ape-solidity, finds compilers as `solc-v<X.Y.Z>` files in
// $SOLCX_BINARY_PATH and only ever calls them with `--version`, `--help` or `--standard-json`.
// This script answers those three so `ape compile` works with no compiler download.
//
// Why not wrap the `solcjs` CLI: its --standard-json mode may print a non-JSON line first.
'use strict';

const fs = require('fs');
const path = require('path');

const solc = require('solc');

function parseArgs(argv) {
  const opts = { basePath: null, includePaths: [], allowPaths: [], mode: null };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const takeValue = () => {
      const eq = arg.indexOf('=');
      if (eq !== -1) return arg.slice(eq + 1);
      i += 1;
      return argv[i];
    };
    if (arg === '--version') opts.mode = 'version';
    else if (arg === '--help') opts.mode = 'help';
    else if (arg === '--standard-json') opts.mode = 'standard-json';
    else if (arg.startsWith('--base-path')) opts.basePath = takeValue();
    else if (arg.startsWith('--include-path')) opts.includePaths.push(takeValue());
    else if (arg.startsWith('--allow-paths')) opts.allowPaths.push(...takeValue().split(','));
    // Any other flag is accepted and ignored: standard JSON carries every compiler setting.
  }
  return opts;
}

function makeImportCallback(opts) {
  const roots = [];
  if (opts.basePath) roots.push(path.resolve(opts.basePath));
  for (const p of opts.includePaths) roots.push(path.resolve(p));
  roots.push(process.cwd());
  return function findImport(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.join(root, importPath));
    for (const candidate of candidates) {
      try {
        return { contents: fs.readFileSync(candidate, 'utf8') };
      } catch (err) {
        // Try the next root.
      }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.mode === 'version') {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  if (opts.mode === 'help') {
    process.stdout.write(
      'solc-js shim\nUsage: solc --standard-json [--base-path P] [--include-path P] [--allow-paths P]\n' +
        '  --standard-json  Switch to Standard JSON input / output mode.\n' +
        '  --base-path      Root of the source tree.\n' +
        '  --include-path   Extra import root.\n' +
        '  --allow-paths    Accepted for compatibility.\n',
    );
    return;
  }
  if (opts.mode !== 'standard-json') {
    process.stderr.write('solc-js shim: only --version, --help and --standard-json are supported\n');
    process.exitCode = 1;
    return;
  }
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: makeImportCallback(opts) });
  // Never process.exit() here: a large result written to a pipe would be cut at 64 KiB.
  process.stdout.write(output);
  process.exitCode = 0;
}

main();
