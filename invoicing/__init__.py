"""Automated project invoicing with the rules of Dynamics 365 Project Operations."""
