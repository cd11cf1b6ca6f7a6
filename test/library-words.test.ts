import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/processes.js';

/**
 * Issue 25: the libraries return codes and data; the programs word the advice (their hints.ts).
 * So no string a library can show a user (a message, a default) names a service unit command,
 * one of the programs, a command-line flag or `sudo`. Comments may: only literals are read.
 */
const LIBRARIES = ['ina219', 'st7735', 'w3bstream', 'meter-files'];

const WORDS: Array<[string, RegExp]> = [
  ['systemctl / journalctl', /\b(systemctl|journalctl)\b/],
  ['a program name', /(?<![\w@/-])(power-meter(-display)?|dev-node)(?![\w-])/],
  ['a --flag', /(?<![\w-])--[a-z][a-z0-9-]*/],
  ['sudo', /\bsudo\b/],
];

/**
 * Literals that are not advice to a user, by file: what the library hands another tool or puts on
 * the wire.
 */
const ALLOWED: Record<string, RegExp> = {
  // The options of the external gpioset tool this library runs (and quotes when its output is odd).
  'packages/st7735/src/gpio.ts':
    /^(--consumer|--chip|--interactive|--mode=exit|--version|--help|cannot tell the libgpiod version from 'gpioset --version' \(|)$/,
  // The library's own name in the User-Agent header of its requests.
  'packages/w3bstream/src/publisher.ts': /^power-meter-w3bstream\/0\.1$/,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every string and template literal piece in `text`, except module names (imports, exports). */
function literals(file: string, text: string): string[] {
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) return;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) out.push(node.text);
    else if (ts.isTemplateExpression(node)) out.push(node.head.text, ...node.templateSpans.map((s) => s.literal.text));
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true));
  return out;
}

/** `file: literal (what it names)` for each offending literal. */
function findings(file: string, text: string): string[] {
  const allowed = ALLOWED[file];
  return literals(file, text).flatMap((l) =>
    allowed?.test(l) ? [] : WORDS.filter(([, re]) => re.test(l)).map(([what]) => `${file}: ${JSON.stringify(l)} (${what})`),
  );
}

describe("the libraries' strings name no program, unit command, flag or sudo", () => {
  it('finds such words in messages and defaults, and not in comments or module names', () => {
    const sample = [
      "import { x } from '@power-meter/meter-files';",
      '// run power-meter --data-dir with sudo systemctl',
      "const a = 'fine: the I2C bus device does not exist';",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal, for the scan to parse
      'const b = `outbox ${f} is in use (systemctl status power-meter)`;',
      "const c = { consumer: 'power-meter-display' };",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal, for the scan to parse
      'throw new Error(`check --project-id ${x} and sudo adduser`);',
    ].join('\n');
    expect(findings('x.ts', sample)).toEqual([
      'x.ts: " is in use (systemctl status power-meter)" (systemctl / journalctl)',
      'x.ts: " is in use (systemctl status power-meter)" (a program name)',
      'x.ts: "power-meter-display" (a program name)',
      'x.ts: "check --project-id " (a --flag)',
      'x.ts: " and sudo adduser" (sudo)',
    ]);
  });

  it('none in the src of ina219, st7735, w3bstream and meter-files', () => {
    const found = LIBRARIES.flatMap((lib) =>
      sourceFiles(join(ROOT, 'packages', lib, 'src')).flatMap((path) => findings(relative(ROOT, path), readFileSync(path, 'utf8'))),
    );
    expect(found).toEqual([]);
  });
});
