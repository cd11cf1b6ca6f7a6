// Holds a write lock on the SQLite database in argv[2] until its stdin closes, as a second writer
// does (someone's sqlite3 shell inside a transaction, a backup tool): the meter's own commits then
// fail with SQLITE_BUSY. Prints `locked` once it holds the lock.
import Database from 'better-sqlite3';

const db = new Database(process.argv[2], { timeout: 10_000 });
db.exec('BEGIN IMMEDIATE');
process.stdout.write('locked\n');
process.stdin.resume();
process.stdin.on('end', () => {
  db.exec('ROLLBACK');
  db.close();
  process.exit(0);
});
