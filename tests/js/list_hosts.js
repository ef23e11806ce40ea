#!/usr/bin/env node
// Usage: node list_hosts.js CONFIG_FILE
//
// Reads an ssh config with the npm package `ssh-config` (github.com/cyjake/ssh-config), the
// parser VS Code Remote-SSH uses, and prints what an IDE built on it would show, as JSON:
//
//   {"hosts": [...],              the host list, as current Remote-SSH shows it (below)
//    "hosts_until_match": [...],  the same, for a parser that stops at the first Match (#9683)
//    "legacy_hosts": [...],       the same, as Remote-SSH showed it before 2025 (#9642, #10642)
//    "computed": {alias: {HostName, User, Port}},   from compute(alias), for every `hosts` entry
//    "options": {alias: {...}},   everything compute(alias) returned (keys lowercased)
//    "exec": {alias: [...]}}      the `Match exec` commands compute(alias) wanted to run
//
// The listing logic is an APPROXIMATION of Remote-SSH's: the extension is closed source. What it
// mimics, from the extension's public issue tracker (microsoft/vscode-remote-release):
//   - every `Host` value, split on whitespace, except patterns (with `*`, `?` or `!`);
//   - `Match` sections: the value of a `host` (and `originalhost`) criterion, shown as ONE entry
//     even when it is a comma-separated list (#11064: "SSH explorer lists multi-host entries"),
//     patterns excluded as for Host. Other criteria are not listed (fixed early 2025 in
//     #10620; #10642 reported the old behaviour on Remote-SSH 0.116.1);
//   - legacy_hosts: before that fix every word of a Match line was listed like a Host value,
//     so `Match exec true` showed the hosts "exec" and "true" (#9642, #10642);
//   - hosts_until_match: #9683, parsing that stops at the first `Match` line.
// Include lines are not followed (ssh-config keeps them as ordinary directives).
//
// compute() runs `Match exec` commands by default (matchExec). This script never runs them: it
// records each command and answers "did not match", so reading a config has no side effects.
'use strict';

const fs = require('node:fs');
const childProcess = require('node:child_process');

let execLog = null;
// ssh-config's CommonJS build calls child_process.spawnSync through the module object, so this
// replacement is what it uses.
childProcess.spawnSync = (command) => {
  if (execLog !== null) execLog.push(String(command));
  return { status: 1, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
};

const { parse, LineType } = require('ssh-config');

const PATTERN = /[*?!]/;

function values(value) {
  return Array.isArray(value) ? value.map(({ val }) => String(val)) : [String(value)];
}

function words(value) {
  return values(value).flatMap((part) => part.split(/\s+/));
}

function criterion(match, name) {
  const key = Object.keys(match.criteria || {}).find((k) => k.toLowerCase() === name);
  if (key === undefined) return [];
  const value = match.criteria[key];
  return [values(value).join(' ')]; // one entry, commas included (#11064)
}

function listing(config, { stopAtMatch = false, legacy = false } = {}) {
  const found = [];
  for (const line of config) {
    if (line.type !== LineType.DIRECTIVE) continue;
    if (/^host$/i.test(line.param)) {
      found.push(...words(line.value));
    } else if (/^match$/i.test(line.param)) {
      if (stopAtMatch) break;
      if (legacy) {
        found.push(...values(line.value)); // a quoted command stays one entry (#10642)
      } else {
        found.push(...criterion(line, 'host'), ...criterion(line, 'originalhost'));
      }
    }
  }
  const shown = found.filter((name) => name !== '' && !PATTERN.test(name));
  return [...new Set(shown)];
}

function main() {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write('usage: node list_hosts.js CONFIG_FILE\n');
    process.exit(2);
  }
  const config = parse(fs.readFileSync(path, 'utf8'));
  const hosts = listing(config);
  const computed = {};
  const options = {};
  const exec = {};
  for (const alias of hosts) {
    execLog = [];
    const all = config.compute(alias, { ignoreCase: true });
    exec[alias] = execLog;
    execLog = null;
    options[alias] = all;
    const first = (value) => (Array.isArray(value) ? value[0] : value) ?? null;
    computed[alias] = {
      HostName: first(all.hostname),
      User: first(all.user),
      Port: first(all.port),
    };
  }
  const result = {
    hosts,
    hosts_until_match: listing(config, { stopAtMatch: true }),
    legacy_hosts: listing(config, { legacy: true }),
    computed,
    options,
    exec,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main();
