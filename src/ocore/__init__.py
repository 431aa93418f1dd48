"""ocore: a self-hostable control plane for Odoo hosting."""

__version__ = "0.1.0"
