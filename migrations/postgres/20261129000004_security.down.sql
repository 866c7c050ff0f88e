DROP TABLE deployment_tls;
DROP TABLE deployment_auth_chains;
DROP INDEX deployment_app_keys_by_deployment;
DROP TABLE deployment_app_keys;
