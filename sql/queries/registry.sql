-- Model registry (recsys.model_versions): every statement on the table. Owner:
-- recsys/model/registry.py, the only module that runs them. Versions are read with the
-- columns of registry.ModelVersion, in its field order.

-- name: lock_versions()!
-- Held until the transaction ends: two registrations cannot both see no champion.
LOCK TABLE recsys.model_versions IN SHARE ROW EXCLUSIVE MODE;

-- name: champion()^
SELECT version_id, created_at, data_fingerprint, split, config, metrics, artifact_uri, status,
       decision_reason, promoted_at
FROM recsys.model_versions WHERE status = 'champion';

-- name: version_by_id(version_id)^
SELECT version_id, created_at, data_fingerprint, split, config, metrics, artifact_uri, status,
       decision_reason, promoted_at
FROM recsys.model_versions WHERE version_id = :version_id;

-- name: all_versions()
SELECT version_id, created_at, data_fingerprint, split, config, metrics, artifact_uri, status,
       decision_reason, promoted_at
FROM recsys.model_versions ORDER BY created_at, version_id;

-- name: champion_version_id()$
SELECT version_id FROM recsys.model_versions WHERE status = 'champion';

-- name: version_is_known(version_id)$
SELECT 1 FROM recsys.model_versions WHERE version_id = :version_id;

-- name: artifact_uri(version_id)$
SELECT artifact_uri FROM recsys.model_versions WHERE version_id = :version_id;

-- name: retire_version(old, why)!
UPDATE recsys.model_versions SET status = 'retired', decision_reason =
    coalesce(decision_reason || '; ', '') || :why WHERE version_id = :old;

-- name: insert_version(version_id, fp, split, config, metrics, uri, status, reason)!
INSERT INTO recsys.model_versions (version_id, data_fingerprint, split, config, metrics,
    artifact_uri, status, decision_reason, promoted_at) VALUES (:version_id, :fp, :split,
    CAST(:config AS jsonb), CAST(:metrics AS jsonb), :uri, :status, :reason,
    CASE WHEN :status = 'champion' THEN now() END);

-- The status page (plugins/recsys_plugin.py), read as named rows.

-- name: champion_summary()
SELECT version_id, created_at, promoted_at, split, config->>'name' AS preset,
       (metrics->>'rmse')::float AS rmse, decision_reason
FROM recsys.model_versions WHERE status = 'champion';

-- name: newest_versions_summary()
-- The five newest versions.
SELECT version_id, status, split, config->>'name' AS preset, (metrics->>'rmse')::float AS rmse,
       created_at, left(decision_reason, 300) AS decision_reason
FROM recsys.model_versions ORDER BY created_at DESC, version_id DESC LIMIT 5;
