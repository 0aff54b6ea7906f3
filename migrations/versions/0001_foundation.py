"""Foundation: enterprises, users, identities, refresh tokens, workers, catalog, addresses.

On PostgreSQL it also enables PostGIS and btree_gist (the next migration's
worker_reservations exclusion constraint needs it) and adds generated PostGIS
columns with GiST indexes: ``geography(Point,4326)`` for addresses and worker
homes and ``geometry(MultiPolygon,4326)`` for service areas. They are derived
from the portable columns (lat/lng, WKB), so the two can never disagree.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography, Geometry

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    ]


def upgrade() -> None:
    """Create the foundation tables (and PostGIS columns on PostgreSQL)."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.create_table(
        "enterprises",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_enterprises"),
        sa.UniqueConstraint("code", name="uq_enterprises_code"),
    )
    op.create_table(
        "users",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("phone", sa.String(20), nullable=True),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("display_name", sa.String(64), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("enterprise_id", BIGID, nullable=True),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("phone", name="uq_users_phone"),
        sa.ForeignKeyConstraint(
            ["enterprise_id"], ["enterprises.id"], name="fk_users_enterprise_id_enterprises"
        ),
        sa.CheckConstraint(
            "role IN ('customer', 'worker', 'staff', 'admin')", name="ck_users_role_valid"
        ),
        sa.CheckConstraint(
            "(role IN ('worker', 'staff')) = (enterprise_id IS NOT NULL)",
            name="ck_users_tenant_role_has_enterprise",
        ),
    )
    op.create_index("ix_users_enterprise_id", "users", ["enterprise_id"])
    op.create_table(
        "social_identities",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("appid", sa.String(64), nullable=False),
        sa.Column("openid", sa.String(128), nullable=False),
        sa.Column("unionid", sa.String(128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_social_identities"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_social_identities_user_id_users",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "provider", "appid", "openid", name="uq_social_identities_provider_openid"
        ),
    )
    op.create_index("ix_social_identities_user_id", "social_identities", ["user_id"])
    op.create_index("ix_social_identities_unionid", "social_identities", ["unionid"])
    op.create_table(
        "refresh_tokens",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("family_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_refresh_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_table(
        "workers",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("enterprise_id", BIGID, nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("shifts", sa.JSON(), nullable=False),
        sa.Column("rating", sa.Float(), nullable=False),
        sa.Column("home_lat", sa.Float(), nullable=False),
        sa.Column("home_lng", sa.Float(), nullable=False),
        sa.Column("home_cell", sa.BigInteger(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_workers_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["enterprise_id"], ["enterprises.id"], name="fk_workers_enterprise_id_enterprises"
        ),
        sa.UniqueConstraint("user_id", name="uq_workers_user_id"),
    )
    op.create_index("ix_workers_enterprise_id", "workers", ["enterprise_id"])
    op.create_index("ix_workers_home_cell", "workers", ["home_cell"])
    op.create_table(
        "service_categories",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_service_categories"),
        sa.UniqueConstraint("code", name="uq_service_categories_code"),
    )
    op.create_table(
        "services",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("enterprise_id", BIGID, nullable=False),
        sa.Column("category_id", BIGID, nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("descriptions", sa.JSON(), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("duration_min", sa.Integer(), nullable=False),
        sa.Column("required_skills", sa.JSON(), nullable=False),
        sa.Column("images", sa.JSON(), nullable=False),
        sa.Column("popularity", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_services"),
        sa.ForeignKeyConstraint(
            ["enterprise_id"], ["enterprises.id"], name="fk_services_enterprise_id_enterprises"
        ),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["service_categories.id"],
            name="fk_services_category_id_service_categories",
        ),
        sa.CheckConstraint("price_fen > 0", name="ck_services_price_positive"),
        sa.CheckConstraint("duration_min > 0", name="ck_services_duration_positive"),
    )
    op.create_index("ix_services_enterprise_id", "services", ["enterprise_id"])
    op.create_index("ix_services_category_id", "services", ["category_id"])
    op.create_table(
        "service_areas",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("enterprise_id", BIGID, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("city", sa.String(64), nullable=False),
        sa.Column("polygon_wkb", sa.LargeBinary(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("min_lng", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("max_lng", sa.Float(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_service_areas"),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprises.id"],
            name="fk_service_areas_enterprise_id_enterprises",
        ),
    )
    op.create_index("ix_service_areas_enterprise_id", "service_areas", ["enterprise_id"])
    op.create_table(
        "addresses",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("user_id", BIGID, nullable=False),
        sa.Column("contact_name", sa.String(64), nullable=False),
        sa.Column("contact_phone", sa.String(20), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(256), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lng", sa.Float(), nullable=False),
        sa.Column("h3_cell", sa.BigInteger(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_addresses"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_addresses_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_addresses_user_id", "addresses", ["user_id"])
    op.create_index("ix_addresses_h3_cell", "addresses", ["h3_cell"])
    op.create_index(
        "uq_addresses_one_default",
        "addresses",
        ["user_id"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )

    if postgres:
        # Generated from the portable columns: the ORM never writes them, so they cannot drift.
        for table, lat, lng, column in (
            ("addresses", "lat", "lng", "geog"),
            ("workers", "home_lat", "home_lng", "home_geog"),
        ):
            op.add_column(
                table,
                sa.Column(
                    column,
                    Geography("POINT", srid=4326, spatial_index=False),
                    sa.Computed(
                        f"ST_SetSRID(ST_MakePoint({lng}, {lat}), 4326)::geography", persisted=True
                    ),
                ),
            )
            op.create_index(f"ix_{table}_{column}", table, [column], postgresql_using="gist")
        op.add_column(
            "service_areas",
            sa.Column(
                "geom",
                Geometry("MULTIPOLYGON", srid=4326, spatial_index=False),
                sa.Computed("ST_Multi(ST_GeomFromWKB(polygon_wkb, 4326))", persisted=True),
            ),
        )
        op.create_index("ix_service_areas_geom", "service_areas", ["geom"], postgresql_using="gist")


def downgrade() -> None:
    """Drop everything ``upgrade`` created (extensions stay: other schemas may use them)."""
    for table in (
        "addresses",
        "service_areas",
        "services",
        "service_categories",
        "workers",
        "refresh_tokens",
        "social_identities",
        "users",
        "enterprises",
    ):
        op.drop_table(table)
