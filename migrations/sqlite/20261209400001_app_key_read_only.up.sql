-- Read-only app keys: a console viewer reads a deployment's API with one (GET only; the
-- broker refuses anything else). Existing keys keep full access.
ALTER TABLE deployment_app_keys ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT FALSE;
