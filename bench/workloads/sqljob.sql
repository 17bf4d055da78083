-- sqljob: a fixed job for sqlite3 (the real /usr/bin/sqlite3), run by the
-- benchmark as
--   sqlite3 -batch -cmd '.parameter set @n 200000' :memory: '.read sqljob.sql'
-- Builds an in-memory database of @n rows, indexes, aggregates, joins,
-- updates and deletes, and checks its results.  Prints "sqlite ok <sum>"
-- or "sqlite BAD ...".
PRAGMA cache_size = -262144;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, s TEXT, v REAL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < @n)
INSERT INTO t SELECT i, (i * 7919) % 10007,
       printf('%08x-%d-%s', (i * 2654435761) % 4294967296, i,
              substr('abcdefghijklmnopqrstuvwxyz', 1, i % 26)),
       (i % 1000) / 7.0
  FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_s ON t(s);
CREATE TABLE agg AS
  SELECT k, count(*) AS cnt, sum(v) AS sv, max(length(s)) AS ml,
         group_concat(id) AS ids
    FROM t GROUP BY k;
UPDATE t SET s = s || '-updated', v = v + 1 WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
CREATE TABLE j AS
  SELECT a.id AS id, b.cnt AS cnt FROM t a JOIN agg b ON a.k = b.k
   WHERE a.id % 7 = 0;
SELECT CASE
  WHEN (SELECT count(*) FROM t) != @n - @n / 5
    THEN 'sqlite BAD count'
  WHEN (SELECT sum(cnt) FROM agg) != @n
    THEN 'sqlite BAD agg'
  WHEN (SELECT count(*) FROM t WHERE s LIKE '%-updated') != @n / 3 - @n / 15
    THEN 'sqlite BAD update'
  WHEN (SELECT count(*) FROM j) != (SELECT count(*) FROM t WHERE id % 7 = 0)
    THEN 'sqlite BAD join'
  ELSE 'sqlite ok ' || ((SELECT sum(id) FROM t) + (SELECT sum(length(ids)) FROM agg)
                        + (SELECT sum(cnt) FROM j) + (SELECT total(length(s)) FROM t))
END;
