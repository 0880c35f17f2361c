"""delivery core: payloads stored once per event, fenced attempts, jobs held without a message

- `alert_events` holds each event's payload once; jobs point at it (`event_id`) instead of
  carrying a copy each.
- `notification_jobs` gains `escalation_step` (part of its uniqueness), `enqueued_at` (when
  its latest broker message was sent), `hold` (why it waits for its channel) and
  `replayed_at`.
- `delivery_log` keeps at most one row per (job_id, attempt).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
UNQUEUED = "enqueued_at IS NULL AND status IN ('PENDING', 'RETRYING')"
QUEUED = "enqueued_at IS NOT NULL AND status IN ('PENDING', 'RETRYING')"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgres():
        # The data moved below lives in tenant tables under FORCEd row-level security.
        op.execute("SELECT set_config('app.tenant_id', '*', true)")

    op.create_table('alert_events',
    sa.Column('event_id', Id, autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('alert_id', Id, nullable=False),
    sa.Column('event_type', sa.String(length=16), nullable=False),
    sa.Column('escalation_step', sa.Integer(), nullable=False),
    sa.Column('payload', Json, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.alert_id'], name=op.f('fk_alert_events_alert_id_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_alert_events_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_alert_events')),
    sa.UniqueConstraint('tenant_id', 'alert_id', 'event_type', 'escalation_step', name=op.f('uq_alert_events_tenant_id_alert_id_event_type_escalation_step'))
    )

    # One stored payload per existing event: the copy of its first job.
    op.execute(
        """INSERT INTO alert_events (tenant_id, alert_id, event_type, escalation_step, payload, created_at)
           SELECT tenant_id, alert_id, event_type, 0, payload, created_at FROM notification_jobs
           WHERE job_id IN (SELECT min(job_id) FROM notification_jobs GROUP BY alert_id, event_type)"""
    )

    with op.batch_alter_table('notification_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_id', Id, nullable=True))
        batch_op.add_column(sa.Column('escalation_step', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('hold', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """UPDATE notification_jobs SET event_id = (
               SELECT e.event_id FROM alert_events e
               WHERE e.alert_id = notification_jobs.alert_id AND e.event_type = notification_jobs.event_type)"""
    )
    # Jobs waiting today have a broker message out, or the sweeper sends them one.
    op.execute(f"UPDATE notification_jobs SET enqueued_at = updated_at WHERE {UNQUEUED}")

    with op.batch_alter_table('notification_jobs', schema=None) as batch_op:
        batch_op.alter_column('event_id', existing_type=Id, nullable=False)
        batch_op.alter_column('escalation_step', existing_type=sa.Integer(), server_default=None)
        batch_op.drop_constraint(op.f('uq_notification_jobs_tenant_id_alert_id_channel_id_event_type'), type_='unique')
        batch_op.create_unique_constraint('uq_notification_jobs_event_channel', ['tenant_id', 'alert_id', 'channel_id', 'event_type', 'escalation_step'])
        batch_op.create_foreign_key(op.f('fk_notification_jobs_event_id_alert_events'), 'alert_events', ['event_id'], ['event_id'], ondelete='CASCADE')
        batch_op.create_index(op.f('ix_notification_jobs_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_notification_jobs_held', ['channel_id', 'job_id'], unique=False, postgresql_where=sa.text('hold IS NOT NULL'), sqlite_where=sa.text('hold IS NOT NULL'))
        batch_op.create_index('ix_notification_jobs_queued', ['tenant_id', 'queue'], unique=False, postgresql_where=sa.text(QUEUED), sqlite_where=sa.text(QUEUED))
        batch_op.create_index('ix_notification_jobs_unqueued', ['tenant_id', 'queue', 'job_id'], unique=False, postgresql_where=sa.text(UNQUEUED), sqlite_where=sa.text(UNQUEUED))
        batch_op.drop_column('payload')

    # The old code could log one attempt twice (the sweeper's "worker lost" and a late
    # outcome): keep the later row.
    op.execute(
        """DELETE FROM delivery_log WHERE id NOT IN (SELECT max(id) FROM delivery_log GROUP BY job_id, attempt)"""
    )
    with op.batch_alter_table('delivery_log', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_log_job_attempt')
        batch_op.create_unique_constraint(op.f('uq_delivery_log_job_id_attempt'), ['job_id', 'attempt'])

    if _postgres():
        op.execute("ALTER TABLE alert_events ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE alert_events FORCE ROW LEVEL SECURITY")
        op.execute(
            """CREATE POLICY alert_events_tenant_isolation ON alert_events
                USING (current_setting('app.tenant_id', true) = '*'
                       OR tenant_id = current_setting('app.tenant_id', true))
                WITH CHECK (current_setting('app.tenant_id', true) = '*'
                            OR tenant_id = current_setting('app.tenant_id', true))"""
        )


def downgrade() -> None:
    if _postgres():
        op.execute("SELECT set_config('app.tenant_id', '*', true)")
        op.execute("DROP POLICY IF EXISTS alert_events_tenant_isolation ON alert_events")
    with op.batch_alter_table('delivery_log', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_delivery_log_job_id_attempt'), type_='unique')
        batch_op.create_index('ix_delivery_log_job_attempt', ['job_id', 'attempt'], unique=False)

    with op.batch_alter_table('notification_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', Json, nullable=True))
    op.execute(
        """UPDATE notification_jobs SET payload = (
               SELECT e.payload FROM alert_events e WHERE e.event_id = notification_jobs.event_id)"""
    )
    # Escalation jobs have no place in the old uniqueness.
    op.execute("DELETE FROM notification_jobs WHERE escalation_step <> 0")
    with op.batch_alter_table('notification_jobs', schema=None) as batch_op:
        batch_op.alter_column('payload', existing_type=Json, nullable=False)
        batch_op.drop_index('ix_notification_jobs_unqueued', postgresql_where=sa.text(UNQUEUED), sqlite_where=sa.text(UNQUEUED))
        batch_op.drop_index('ix_notification_jobs_queued', postgresql_where=sa.text(QUEUED), sqlite_where=sa.text(QUEUED))
        batch_op.drop_index('ix_notification_jobs_held', postgresql_where=sa.text('hold IS NOT NULL'), sqlite_where=sa.text('hold IS NOT NULL'))
        batch_op.drop_index(op.f('ix_notification_jobs_event_id'))
        batch_op.drop_constraint(op.f('fk_notification_jobs_event_id_alert_events'), type_='foreignkey')
        batch_op.drop_constraint('uq_notification_jobs_event_channel', type_='unique')
        batch_op.create_unique_constraint(op.f('uq_notification_jobs_tenant_id_alert_id_channel_id_event_type'), ['tenant_id', 'alert_id', 'channel_id', 'event_type'])
        batch_op.drop_column('replayed_at')
        batch_op.drop_column('hold')
        batch_op.drop_column('enqueued_at')
        batch_op.drop_column('escalation_step')
        batch_op.drop_column('event_id')
    op.drop_table('alert_events')
