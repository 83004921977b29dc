-- Data sets beyond MovieLens 100K (recsys/data/adapters.py): the MovieLens CSV releases
-- (ml-latest-small, 25M, 32M) rate in half stars from 0.5 to 5.0 and have no demographics.
-- depends: 0010.split_tests_pair_index

-- Half stars: `real` holds every 0.5 step exactly. The check allows the widest scale of any
-- adapter; each adapter checks its own scale (ML-100K: whole stars 1-5) before the load.
ALTER TABLE recsys.ratings DROP CONSTRAINT IF EXISTS ratings_rating_check;
ALTER TABLE recsys.ratings ALTER COLUMN rating TYPE real;
ALTER TABLE recsys.ratings ADD CONSTRAINT ratings_rating_check
    CHECK (rating BETWEEN 0.5 AND 5 AND rating * 2 = round(rating * 2));

-- A data set without demographics leaves them NULL (the columns' checks still hold when set).
ALTER TABLE recsys.users ALTER COLUMN age DROP NOT NULL;
ALTER TABLE recsys.users ALTER COLUMN gender DROP NOT NULL;
ALTER TABLE recsys.users ALTER COLUMN occupation DROP NOT NULL;
ALTER TABLE recsys.users ALTER COLUMN zip_code DROP NOT NULL;

-- Which adapter read each load: readers of the feature store (training, precompute) take the
-- side columns and the rating scale from it. Loads before this migration were ML-100K.
ALTER TABLE recsys.datasets ADD COLUMN dataset text NOT NULL DEFAULT 'ml-100k';
