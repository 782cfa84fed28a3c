-- Memory search as a function, so a client runs it as one cached prepared
-- statement (one round trip) while the search itself is still planned for
-- its actual scopes and words on every call: `EXECUTE … USING` gives the
-- planner the values, so other scopes' partitions are pruned at plan time
-- and each scope's GIN index is used. (A plain prepared statement
-- eventually switches to a generic plan that scans every partition; an
-- unnamed statement is planned per call but costs the client a second
-- round trip to describe it.)
--
-- Candidates first, ranking second: up to `candidates` passages matching
-- every query word and up to `candidates` matching any, then cover-density
-- ranking over them with the OR query; the best `lim` are returned.
CREATE FUNCTION pincer_memory_search(scopes text[], question text, lim bigint, candidates bigint)
RETURNS TABLE (id bigint, scope text, source text, locator text, body text, rank real)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY EXECUTE
    'SELECT r.id, r.scope, r.source, r.locator, r.body, r.rank FROM (
         SELECT DISTINCT ON (c.id) c.id, c.scope, c.source, c.locator, c.body,
                ts_rank_cd(c.tsv, NULLIF(replace(plainto_tsquery(''english'', $2)::text, '' & '', '' | ''), '''')::tsquery) AS rank
         FROM (
             (SELECT m.id, m.scope, m.source, m.locator, m.body, m.tsv FROM memory_items m
              WHERE m.scope = ANY($1) AND m.tsv @@ plainto_tsquery(''english'', $2) LIMIT $4)
             UNION ALL
             (SELECT m.id, m.scope, m.source, m.locator, m.body, m.tsv FROM memory_items m
              WHERE m.scope = ANY($1)
                AND m.tsv @@ NULLIF(replace(plainto_tsquery(''english'', $2)::text, '' & '', '' | ''), '''')::tsquery LIMIT $4)
         ) c ORDER BY c.id
     ) r
     ORDER BY r.rank DESC, r.id DESC
     LIMIT $3'
    USING scopes, question, lim, candidates;
END $$;

-- The same candidates, every one, with their embeddings (hybrid ranking
-- fuses full-text rank and embedding similarity in the gateway).
CREATE FUNCTION pincer_memory_candidates(scopes text[], question text, candidates bigint)
RETURNS TABLE (id bigint, scope text, source text, locator text, body text, rank real, embedding real[])
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY EXECUTE
    'SELECT DISTINCT ON (c.id) c.id, c.scope, c.source, c.locator, c.body,
            ts_rank_cd(c.tsv, NULLIF(replace(plainto_tsquery(''english'', $2)::text, '' & '', '' | ''), '''')::tsquery) AS rank,
            c.embedding
     FROM (
         (SELECT m.id, m.scope, m.source, m.locator, m.body, m.tsv, m.embedding FROM memory_items m
          WHERE m.scope = ANY($1) AND m.tsv @@ plainto_tsquery(''english'', $2) LIMIT $3)
         UNION ALL
         (SELECT m.id, m.scope, m.source, m.locator, m.body, m.tsv, m.embedding FROM memory_items m
          WHERE m.scope = ANY($1)
            AND m.tsv @@ NULLIF(replace(plainto_tsquery(''english'', $2)::text, '' & '', '' | ''), '''')::tsquery LIMIT $3)
     ) c ORDER BY c.id'
    USING scopes, question, candidates;
END $$;
