ALTER TABLE deployment_app_keys DROP COLUMN read_only;
