-- Traffic policy: priority lanes, tenant fairness, scheduled sends, validity,
-- per-tenant limits and quotas.

-- The outbox row carries what the claim orders and shares by, so a claim
-- never joins messages to choose: the lane (0 OTP, 1 transactional,
-- 2 marketing: domain/lanes.py) and the tenant. expire_at lets a sweeper
-- end messages whose validity ran out while they waited.
ALTER TABLE outbox ADD COLUMN tenant_id uuid;
ALTER TABLE outbox ADD COLUMN lane smallint NOT NULL DEFAULT 1;
ALTER TABLE outbox ADD COLUMN expire_at timestamptz;

UPDATE outbox o
SET tenant_id = m.tenant_id,
    lane = CASE m.traffic_class WHEN 'otp' THEN 0 WHEN 'marketing' THEN 2 ELSE 1 END
FROM messages m WHERE m.id = o.message_id;

ALTER TABLE outbox ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE outbox ALTER COLUMN lane DROP DEFAULT;

CREATE INDEX outbox_lane_tenant_due ON outbox (lane, tenant_id, due_at);
CREATE INDEX outbox_expire ON outbox (expire_at) WHERE expire_at IS NOT NULL;

-- send_at: when a scheduled message was asked to leave (NULL: at once).
-- expire_at: the end of its validity; not handed over by then, it expires.
ALTER TABLE messages ADD COLUMN send_at timestamptz;
ALTER TABLE messages ADD COLUMN expire_at timestamptz;

-- Each tenant's traffic policy; zero means no limit.
ALTER TABLE tenants ADD COLUMN rate_per_second double precision NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN burst integer NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN daily_segment_quota bigint NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN monthly_segment_quota bigint NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN weight integer NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN quiet_start time;
ALTER TABLE tenants ADD COLUMN quiet_end time;
ALTER TABLE tenants ADD COLUMN policy_updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE tenants ADD CONSTRAINT tenants_policy_sane CHECK (
    rate_per_second >= 0 AND burst >= 0 AND daily_segment_quota >= 0
    AND monthly_segment_quota >= 0 AND weight BETWEEN 1 AND 1000
    AND (quiet_start IS NULL) = (quiet_end IS NULL));

-- Segments accepted per tenant and period ('d' a UTC day, 'm' a UTC month),
-- counted in the transaction that accepts the messages.
CREATE TABLE tenant_usage (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    period        "char" NOT NULL CHECK (period IN ('d', 'm')),
    period_start  date NOT NULL,
    segments      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, period, period_start)
);
