#!/usr/bin/env node
// The command npm links (npx power-meter-display, node_modules/.bin): it exists before the build,
// so npm can link it and set its mode at install time; the program itself is the built cli.
import '../dist/cli.js';
