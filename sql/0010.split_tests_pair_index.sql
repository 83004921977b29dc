-- A reload replaces the feature store's rows with DELETE + COPY in one transaction instead
-- of TRUNCATE: TRUNCATE takes an ACCESS EXCLUSIVE lock that made every reader (the API's
-- title lookups, the views) wait for the whole load and time out. Deleting a rating checks
-- that no split_tests row refers to it; without this index each of those checks scanned
-- split_tests whole.
-- depends: 0009.api_role_lockdown

CREATE INDEX IF NOT EXISTS split_tests_pair_idx ON recsys.split_tests (user_id, movie_id);
