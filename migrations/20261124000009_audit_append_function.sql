-- Appending to the audit chain in one round trip: the head is locked, each
-- row's hash computed and the rows and the new head written by the
-- database, so an append can also be one part of a larger statement (the
-- router's whole write for a chat message is one statement).
--
-- The hash is the one `store::audit::row_hash` computes: SHA-256 over the
-- canonical JSON array [prev_hash, seq, ts, user_email, action, metadata].
-- The caller sends, per row, that array's text after `seq,` (the "tail":
-- ts, user, action and metadata, canonicalised, and the closing bracket);
-- the database prefixes the previous hash and the seq it assigns. Hashes
-- are lowercase hex and seqs integers, so the prefix needs no escaping.
CREATE FUNCTION pincer_audit_append(
    p_ts timestamptz[], p_users text[], p_actions text[], p_metadata jsonb[], p_tails text[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    h_seq bigint;
    h_hash text;
    next_hash text;
BEGIN
    SELECT seq, row_hash INTO h_seq, h_hash FROM audit_head WHERE id = 1 FOR UPDATE;
    IF coalesce(array_length(p_tails, 1), 0) = 0 THEN
        RETURN h_seq;
    END IF;
    FOR i IN 1 .. array_length(p_tails, 1) LOOP
        h_seq := h_seq + 1;
        next_hash := encode(sha256(convert_to('["' || h_hash || '",' || h_seq || ',' || p_tails[i], 'UTF8')), 'hex');
        INSERT INTO audit_log (seq, ts, user_email, action, metadata, prev_hash, row_hash)
        VALUES (h_seq, p_ts[i], p_users[i], p_actions[i], p_metadata[i], h_hash, next_hash);
        h_hash := next_hash;
    END LOOP;
    UPDATE audit_head SET seq = h_seq, row_hash = h_hash WHERE id = 1;
    RETURN h_seq;
END $$;
