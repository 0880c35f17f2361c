"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tenants',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_tenants'))
    )
    op.create_table('alerts',
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=128), nullable=False),
    sa.Column('site_id', sa.String(length=128), nullable=True),
    sa.Column('alert_type', sa.String(length=128), nullable=False),
    sa.Column('severity', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('fingerprint', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('triggered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_alerts_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('alert_id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_tenant_device_type', ['tenant_id', 'device_id', 'alert_type'], unique=False)
        batch_op.create_index(
            'uq_alerts_active_fingerprint', ['tenant_id', 'fingerprint'], unique=True,
            postgresql_where=sa.text("status IN ('OPEN', 'ACKNOWLEDGED')"),
            sqlite_where=sa.text("status IN ('OPEN', 'ACKNOWLEDGED')"),
        )
        batch_op.create_index('ix_alerts_tenant_status', ['tenant_id', 'status'], unique=False)

    op.create_table('devices',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=128), nullable=False),
    sa.Column('site_id', sa.String(length=128), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_devices_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'device_id', name=op.f('pk_devices'))
    )
    op.create_table('notification_channels',
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('channel_type', sa.String(length=32), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('encrypted_secrets', sa.LargeBinary(), nullable=True),
    sa.Column('is_enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_notification_channels_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_notification_channels'))
    )
    with op.batch_alter_table('notification_channels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_channels_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('telemetry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=128), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_telemetry_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telemetry'))
    )
    with op.batch_alter_table('telemetry', schema=None) as batch_op:
        batch_op.create_index('ix_telemetry_device_time', ['tenant_id', 'device_id', 'ts'], unique=False)

    op.create_table('users',
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_users_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('email', name=op.f('pk_users'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('notification_routing_rules',
    sa.Column('rule_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('min_severity', sa.Integer(), nullable=True),
    sa.Column('alert_type', sa.String(length=128), nullable=True),
    sa.Column('device_tag_key', sa.String(length=128), nullable=True),
    sa.Column('device_tag_val', sa.String(length=256), nullable=True),
    sa.Column('site_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('device_prefixes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('deliver_on', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('throttle_minutes', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('is_enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['notification_channels.channel_id'], name=op.f('fk_notification_routing_rules_channel_id_notification_channels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_notification_routing_rules_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_notification_routing_rules'))
    )
    with op.batch_alter_table('notification_routing_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_routing_rules_channel_id'), ['channel_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_routing_rules_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('notification_jobs',
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rule_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('event_type', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('queue', sa.String(length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempts_at_replay', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.alert_id'], name=op.f('fk_notification_jobs_alert_id_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['channel_id'], ['notification_channels.channel_id'], name=op.f('fk_notification_jobs_channel_id_notification_channels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['notification_routing_rules.rule_id'], name=op.f('fk_notification_jobs_rule_id_notification_routing_rules'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_notification_jobs_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_notification_jobs')),
    sa.UniqueConstraint('tenant_id', 'alert_id', 'channel_id', 'event_type', name=op.f('uq_notification_jobs_tenant_id_alert_id_channel_id_event_type'))
    )
    with op.batch_alter_table('notification_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_jobs_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index('ix_notification_jobs_status_next', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_notification_jobs_tenant_created', ['tenant_id', 'job_id'], unique=False)
        batch_op.create_index('ix_notification_jobs_throttle', ['channel_id', 'event_type', 'created_at'], unique=False)

    op.create_table('delivery_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('success', sa.Boolean(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Double(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['notification_jobs.job_id'], name=op.f('fk_delivery_log_job_id_notification_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_delivery_log_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_log'))
    )
    with op.batch_alter_table('delivery_log', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_log_job_attempt', ['job_id', 'attempt'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_log_tenant_id'), ['tenant_id'], unique=False)



    if op.get_bind().dialect.name == "postgresql":
        _enable_row_level_security()


# Every tenant table answers only to the tenant named in the transaction's `app.tenant_id`;
# '*' is Pulse's own cross-tenant scope (the delivery sweeper, login). FORCE applies the
# policy to the table owner too, so an application role that owns the schema is bound by it.
TENANT_TABLES = (
    "users",
    "devices",
    "alerts",
    "notification_channels",
    "notification_routing_rules",
    "notification_jobs",
    "delivery_log",
    "telemetry",
)


def _enable_row_level_security() -> None:
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"""CREATE POLICY {table}_tenant_isolation ON {table}
                USING (current_setting('app.tenant_id', true) = '*'
                       OR tenant_id = current_setting('app.tenant_id', true))
                WITH CHECK (current_setting('app.tenant_id', true) = '*'
                            OR tenant_id = current_setting('app.tenant_id', true))"""
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            op.execute(f"DROP POLICY IF EXISTS {table}_tenant_isolation ON {table}")
    with op.batch_alter_table('delivery_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_log_tenant_id'))
        batch_op.drop_index('ix_delivery_log_job_attempt')

    op.drop_table('delivery_log')
    with op.batch_alter_table('notification_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_jobs_throttle')
        batch_op.drop_index('ix_notification_jobs_tenant_created')
        batch_op.drop_index('ix_notification_jobs_status_next')
        batch_op.drop_index(batch_op.f('ix_notification_jobs_alert_id'))

    op.drop_table('notification_jobs')
    with op.batch_alter_table('notification_routing_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_routing_rules_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_notification_routing_rules_channel_id'))

    op.drop_table('notification_routing_rules')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_tenant_id'))

    op.drop_table('users')
    with op.batch_alter_table('telemetry', schema=None) as batch_op:
        batch_op.drop_index('ix_telemetry_device_time')

    op.drop_table('telemetry')
    with op.batch_alter_table('notification_channels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_channels_tenant_id'))

    op.drop_table('notification_channels')
    op.drop_table('devices')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_tenant_status')
        batch_op.drop_index('uq_alerts_active_fingerprint', postgresql_where=sa.text("status IN ('OPEN', 'ACKNOWLEDGED')"), sqlite_where=sa.text("status IN ('OPEN', 'ACKNOWLEDGED')"))
        batch_op.drop_index('ix_alerts_tenant_device_type')

    op.drop_table('alerts')
    op.drop_table('tenants')
