"""Deployment and local-infrastructure tooling for the SAM stack in ``template.yaml``."""
