DROP TABLE certificate_notices;
DROP TABLE deployment_certificates;
