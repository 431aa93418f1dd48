"""list page indexes

The first page of the instance, job and environment lists read and sorted every
row of the organization (or project) before taking 20; with these indexes it
reads about 20 index entries in the list's order (bench/load.py: 10,000 rows).

Revision ID: b12b57736bde
Revises: cd3b82df13fa
Create Date: 2026-12-02 12:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b12b57736bde"
down_revision: str | None = "cd3b82df13fa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_environments_organization_created", ["organization_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_environments_project_created", ["project_id", "created_at"], unique=False
        )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_instances_organization_name", ["organization_id", "name"], unique=False
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_organization_created", ["organization_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_organization_created")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_organization_name")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_index("ix_environments_project_created")
        batch_op.drop_index("ix_environments_organization_created")
