"""on-call: silences and maintenance windows, escalation steps, who acknowledged and closed

- `silences` (a tenant table, under row-level security like the others).
- `alerts` gains `acknowledged_by` and `closed_by`.
- `notification_routing_rules` gains `escalation` (a list of steps, or null).
- `notification_jobs` gains `silence_id` (the silence that suppressed the job, while its end
  may still release it) and `released_at` (when a silence's end released it; escalation
  counts from then).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table('silences',
    sa.Column('silence_id', Id, autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('matchers', Json, nullable=False),
    sa.Column('channel_ids', Json, nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recurrence', Json, nullable=True),
    sa.Column('notify_on_end', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_silences_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('silence_id', name=op.f('pk_silences'))
    )
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_silences_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_by', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sa.String(length=254), nullable=True))

    with op.batch_alter_table('notification_routing_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation', Json, nullable=True))

    with op.batch_alter_table('notification_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('silence_id', Id, nullable=True))
        batch_op.add_column(sa.Column('released_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(op.f('fk_notification_jobs_silence_id_silences'), 'silences', ['silence_id'], ['silence_id'], ondelete='SET NULL')
        # The sweeper's look for suppressed jobs a silence's end may release.
        batch_op.create_index('ix_notification_jobs_silenced', ['silence_id'], unique=False, postgresql_where=sa.text('silence_id IS NOT NULL'), sqlite_where=sa.text('silence_id IS NOT NULL'))

    if _postgres():
        op.execute("ALTER TABLE silences ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE silences FORCE ROW LEVEL SECURITY")
        op.execute(
            """CREATE POLICY silences_tenant_isolation ON silences
                USING (current_setting('app.tenant_id', true) = '*'
                       OR tenant_id = current_setting('app.tenant_id', true))
                WITH CHECK (current_setting('app.tenant_id', true) = '*'
                            OR tenant_id = current_setting('app.tenant_id', true))"""
        )


def downgrade() -> None:
    if _postgres():
        op.execute("SELECT set_config('app.tenant_id', '*', true)")
        op.execute("DROP POLICY IF EXISTS silences_tenant_isolation ON silences")
    # Escalation jobs are the only ones that need the escalation columns' meaning; they stay
    # (0002's schema already holds `escalation_step`).
    with op.batch_alter_table('notification_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_jobs_silenced', postgresql_where=sa.text('silence_id IS NOT NULL'), sqlite_where=sa.text('silence_id IS NOT NULL'))
        batch_op.drop_constraint(op.f('fk_notification_jobs_silence_id_silences'), type_='foreignkey')
        batch_op.drop_column('released_at')
        batch_op.drop_column('silence_id')
    with op.batch_alter_table('notification_routing_rules', schema=None) as batch_op:
        batch_op.drop_column('escalation')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('closed_by')
        batch_op.drop_column('acknowledged_by')
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_silences_tenant_id'))
    op.drop_table('silences')
