"""routing version: the database bumps a tenant's `routing_version` on every routing write

`tenants.routing_version` is incremented by triggers on every insert, update and delete of
the tenant's routing rules, notification channels and silences. Processes keep each tenant's
routing in memory and check it against this one integer per alert (app/tenant_routing.py);
a trigger means no write path can forget to bump it.

On PostgreSQL the trigger function is SECURITY DEFINER: the application's role changes rules,
and the bump of its tenant's row happens with the owner's rights, whatever the role may
update itself.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ("notification_routing_rules", "notification_channels", "silences")
OPERATIONS = {"insert": "NEW", "update": "NEW", "delete": "OLD"}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('routing_version', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
    if _postgres():
        op.execute(
            """
            CREATE FUNCTION pulse_bump_routing_version() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    UPDATE tenants SET routing_version = routing_version + 1 WHERE tenant_id = OLD.tenant_id;
                    RETURN OLD;
                END IF;
                UPDATE tenants SET routing_version = routing_version + 1 WHERE tenant_id = NEW.tenant_id;
                IF TG_OP = 'UPDATE' AND NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
                    UPDATE tenants SET routing_version = routing_version + 1 WHERE tenant_id = OLD.tenant_id;
                END IF;
                RETURN NEW;
            END
            $$
            """
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_routing_version AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION pulse_bump_routing_version()"
            )
    else:
        for table in TABLES:
            for operation, row in OPERATIONS.items():
                op.execute(
                    f"CREATE TRIGGER {table}_routing_version_{operation} AFTER {operation.upper()} ON {table} "
                    f"BEGIN UPDATE tenants SET routing_version = routing_version + 1 WHERE tenant_id = {row}.tenant_id; END"
                )


def downgrade() -> None:
    if _postgres():
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_routing_version ON {table}")
        op.execute("DROP FUNCTION IF EXISTS pulse_bump_routing_version()")
    else:
        for table in TABLES:
            for operation in OPERATIONS:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_routing_version_{operation}")
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('routing_version')
