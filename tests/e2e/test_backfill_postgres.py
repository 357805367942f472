"""Backfill on PostgreSQL: migration 0004 and a backfilled upload through a real hub."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select, text

from nvrlib.catalog.models import Camera, Outage, Segment
from tests.e2e.test_backfill_e2e import first_pts, push_v2
from tests.support.media import encoded_ts
from tests.support.postgres import (
    create_database, postgres_available, postgres_cluster, postgres_unavailable_reason,
)
from tests.support.requirements import require
from tests.support.upgrades import head

require(None if postgres_available() else f"PostgreSQL: {postgres_unavailable_reason()}",
        module_level=True)

pytestmark = pytest.mark.e2e
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One throwaway cluster (server time zone far from UTC); yields its first database's URL."""
    with postgres_cluster("nvr") as url:
        yield url


def test_backfill_is_cataloged_in_its_true_slot_on_postgresql(hub_factory, cluster):
    url = create_database(cluster, "nvr_backfill")
    engine = create_engine(url)
    hub = hub_factory(segment_seconds=2)
    hub.db_url = url
    hub.start()
    try:
        clip = encoded_ts(6)
        lead = first_pts(clip)
        live = push_v2(hub, "porch", clip[:len(clip) // 3], time.time() - lead)
        assert live.acks[-1].done
        past = time.time() - 7200  # two hours ago: footage the edge spooled
        first = push_v2(hub, "porch", clip, past - lead, mode="backfill", backfill_id="pg-1")
        again = push_v2(hub, "porch", clip, past - lead, mode="backfill", backfill_id="pg-1")
        assert first.acks[-1].done and again.acks[-1].done
        assert hub.stop() == 0, hub.output[-3000:]
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head()
            rows = conn.execute(select(Segment.start_time, Segment.duration, Segment.backfilled)
                                .join(Camera).where(Camera.name == "porch")
                                .order_by(Segment.start_time)).all()
            outages = conn.execute(select(Outage.backfilled_seconds, Outage.dropped_seconds)).all()
        filled = [r for r in rows if r.backfilled]
        assert len(filled) == first.acks[-1].segments >= 3, rows  # the second upload: dropped
        expected = dt.datetime.fromtimestamp(past, UTC)
        assert abs((filled[0].start_time - expected).total_seconds()) < 0.01, filled[0]
        assert not any(r.backfilled for r in rows if r.start_time > expected + dt.timedelta(hours=1))
        assert all(o.backfilled_seconds == 0 and o.dropped_seconds == 0 for o in outages)
    finally:
        engine.dispose()
