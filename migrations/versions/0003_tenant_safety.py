"""tenant safety: channels are deleted softly, keeping their delivery history

- `notification_channels.deleted_at`: set by `DELETE /channels/{id}`. A deleted channel is
  disabled and hidden from the API, gets no new jobs, and its jobs and delivery log stay
  readable under `/deliveries`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notification_channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The rows removed below live under FORCEd row-level security.
        op.execute("SELECT set_config('app.tenant_id', '*', true)")
    # Before this revision a deleted channel took its jobs and their log with it.
    op.execute("DELETE FROM notification_channels WHERE deleted_at IS NOT NULL")
    with op.batch_alter_table('notification_channels', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
