#!/usr/bin/env node
// The controller daemon arrives with issue 4; until then this entry says so plainly.
process.stderr.write('forkd-controller: the daemon is not built yet (see issue 4); use the local `forkd` CLI\n');
process.exitCode = 1;
