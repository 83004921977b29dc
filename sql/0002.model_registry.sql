-- Model registry: every trained model, and which one is champion.
-- depends: 0001.feature_store
CREATE TABLE recsys.model_versions (
    version_id        text PRIMARY KEY,
    created_at        timestamptz NOT NULL DEFAULT now(),
    data_fingerprint  text  NOT NULL,
    split             text  NOT NULL,
    config            jsonb NOT NULL,
    metrics           jsonb NOT NULL,
    artifact_uri      text  NOT NULL,
    status            text  NOT NULL
        CHECK (status IN ('challenger', 'champion', 'rejected', 'retired')),
    decision_reason   text,
    promoted_at       timestamptz
);
-- At most one champion, enforced by the database rather than by convention.
CREATE UNIQUE INDEX model_versions_one_champion
    ON recsys.model_versions (status) WHERE status = 'champion';
