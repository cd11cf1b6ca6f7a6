#!/usr/bin/env node
// The command npm links (npx applet-host): it exists before the build, so npm can link it and
// set its mode at install time; the program itself is the built cli.
import '../dist/cli.js';
