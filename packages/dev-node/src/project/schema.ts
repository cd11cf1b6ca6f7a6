/**
 * The project database's schema in the node's configuration shape (`wasm.Database`,
 * pkg/types/wasm/wasm_config_database.go) and the DDL the node's Postgres connector writes for it
 * (pkg/depends/kit/sqlx/driver/postgres/connector.go: CreateTableIsNotExists, AddIndex, DataType):
 *
 * - TEXT is `character varying(255)` (the length given, `text` from 21845 characters up);
 *   INT…/UINT… `integer` (`serial` with autoincrement), INT64/UINT64 `bigint` (`bigserial`),
 *   FLOAT32 `real`, FLOAT64 `double precision`, BOOL `boolean`, TIMESTAMP `bigint` (epoch),
 *   DECIMAL `decimal`, NUMERIC `numeric` (with `(length,decimal)` when a length is given);
 * - every column is NOT NULL unless `null` is true; a default is cast to the column's type;
 * - names are written unquoted (Postgres folds them to lower case);
 * - a unique key named `primary` (or ending in `pkey`) is the primary key; other keys are indexes
 *   named `<table>_<table>_<ui|i>_<columns>`.
 *
 * Tables do not get an `id` by themselves: W3bstream Studio adds `id` (int8 identity, primary
 * key) to the tables it creates, and applets order by it, so declare it: `{"name":"id",
 * "constrains":{"datatype":"INT64","autoincrement":true}}` with a `primary` key on it.
 */
export const DATATYPES = [
  'INT',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'UINT',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'FLOAT32',
  'FLOAT64',
  'TEXT',
  'BOOL',
  'TIMESTAMP',
  'DECIMAL',
  'NUMERIC',
] as const;
export type Datatype = (typeof DATATYPES)[number];

export interface ColumnConstrains {
  datatype: Datatype;
  length?: number;
  decimal?: number;
  default?: string;
  null?: boolean;
  autoincrement?: boolean;
  desc?: string;
}
export interface ColumnSpec {
  name: string;
  constrains: ColumnConstrains;
}
export interface KeySpec {
  name?: string;
  method?: string;
  isUnique?: boolean;
  columnNames: string[];
  expr?: string;
}
export interface TableSpec {
  name: string;
  desc?: string;
  cols: ColumnSpec[];
  keys?: KeySpec[];
}
export interface SchemaSpec {
  /** Default `public`. */
  schema?: string;
  tables?: TableSpec[];
}
export interface DatabaseSpec {
  dialect?: string;
  schemas?: SchemaSpec[];
}

function baseType(c: ColumnConstrains): string {
  switch (c.datatype) {
    case 'INT64':
    case 'UINT64':
      return c.autoincrement ? 'bigserial' : 'bigint';
    case 'FLOAT32':
      return 'real';
    case 'FLOAT64':
      return 'double precision';
    case 'TEXT':
      return (c.length ?? 0) < Math.floor(65536 / 3) ? 'character varying' : 'text';
    case 'BOOL':
      return 'boolean';
    case 'TIMESTAMP':
      return 'bigint';
    case 'DECIMAL':
      return 'decimal';
    case 'NUMERIC':
      return 'numeric';
    default:
      return c.autoincrement ? 'serial' : 'integer';
  }
}

function sizeModifier(length: number, decimal: number): string {
  if (length <= 0) return '';
  return decimal > 0 ? `(${length},${decimal})` : `(${length})`;
}

/** autocompleteSize: varchar defaults to 255; decimal, numeric, real, double only with a length. */
function size(type: string, c: ColumnConstrains): string {
  if (type === 'character varying') return sizeModifier(c.length || 255, c.decimal ?? 0);
  if (['decimal', 'numeric', 'real', 'double precision'].includes(type)) return sizeModifier(c.length ?? 0, c.decimal ?? 0);
  return '';
}

/** normalizeDefaultValue: a quoted literal or a number is cast to the type; anything else is an expression. */
function defaultValue(value: string, type: string): string {
  const dv = value === '' ? "''" : value;
  if (dv.startsWith("'")) return dv.includes("'::") ? dv : `${dv}::${type}`;
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(dv)) return `'${dv}'::${type}`;
  return dv;
}

export function columnDdl(c: ColumnSpec): string {
  const type = baseType(c.constrains);
  let ddl = `${c.name} ${type}${size(type, c.constrains)}`;
  if (!c.constrains.null) ddl += ' NOT NULL';
  if (c.constrains.default !== undefined) ddl += ` DEFAULT ${defaultValue(c.constrains.default, type)}`;
  return ddl;
}

function isPrimary(k: KeySpec): boolean {
  return Boolean(k.isUnique) && (k.name === 'primary' || (k.name ?? '').endsWith('pkey'));
}

/** The statements that create a schema's tables and indexes, as the node's migration does on a new database. */
export function databaseDdl(db: DatabaseSpec): string[] {
  const out: string[] = [];
  for (const s of schemasOf(db)) {
    const schema = s.schema || 'public';
    out.push(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    for (const t of s.tables ?? []) {
      const table = `${schema}.${t.name}`;
      const lines = t.cols.map((c) => `\n\t${columnDdl(c)}`);
      for (const k of t.keys ?? []) if (isPrimary(k)) lines.push(`\n\tPRIMARY KEY (${k.expr || k.columnNames.join(',')})`);
      out.push(`CREATE TABLE IF NOT EXISTS ${table} (${lines.join(',')}\n)`);
      for (const k of t.keys ?? []) {
        if (isPrimary(k)) continue;
        const name = [t.name, k.isUnique ? 'ui' : 'i', ...k.columnNames].join('_');
        const method = (k.method ?? '').toUpperCase();
        const using = method ? ` USING ${method === 'SPATIAL' ? 'GIST' : method}` : '';
        out.push(
          `CREATE ${k.isUnique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS ${t.name}_${name} ON ${table}${using} (${k.expr || k.columnNames.join(',')})`,
        );
      }
    }
  }
  return out;
}

/** The node's Init: no schema = `public`; an unnamed schema is `public`. */
export function schemasOf(db: DatabaseSpec | undefined): SchemaSpec[] {
  const list = db?.schemas?.length ? db.schemas : [{ schema: 'public' }];
  return list.map((s) => ({ ...s, schema: s.schema || 'public' }));
}
