-- The sha256 of every archive member a load read ({"u.item": "...", ...}), so that a changed
-- u.item or u.user is a different data set, not "already loaded". `fingerprint` stays
-- sha256(u.data), the official content fingerprint that models record.
-- depends: 0007.predicted_rating

-- Nullable: data sets loaded before this migration have no member digests; the next ingest
-- sees them as different and reloads once.
ALTER TABLE recsys.datasets ADD COLUMN member_sha256 jsonb;
