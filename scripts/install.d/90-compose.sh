# docker-compose (v1, Debian) validates docker-compose.yml without a Docker engine.
apt_ensure docker-compose
