-- docker-compose.yml: run once by the postgres image on an empty volume, after it has
-- created role "muster" and database "muster" from POSTGRES_USER/POSTGRES_DB.
-- scripts/services.sh does the same on the host's Debian cluster.
ALTER ROLE muster CREATEDB;
CREATE DATABASE apicurio OWNER muster;
