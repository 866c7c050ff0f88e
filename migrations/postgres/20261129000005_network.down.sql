DROP TABLE deployment_internal_endpoints;
DROP TABLE deployment_nat_gateways;
DROP INDEX deployment_domains_due;
DROP INDEX deployment_domains_by_deployment;
DROP TABLE deployment_domains;
