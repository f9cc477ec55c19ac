"""Automated project invoicing: the rules of Dynamics 365 Project Operations' automatic invoicing."""
