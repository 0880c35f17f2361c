// The form of each channel type: the config keys of DESIGN §7, with labels, defaults and the
// constraints the browser checks before the API does. `secret` fields are write-only.

const URL_PATTERN = "https?://.+";

const caFields = (prefix) => [
  { name: `${prefix}ca_pem`, label: "Trusted CA certificates (PEM)", kind: "textarea", rows: 3, placeholder: "-----BEGIN CERTIFICATE-----", help: "Optional: the certificates to trust instead of the system's." },
  { name: `${prefix}ca_file`, label: "CA file", help: "Optional: a PEM file inside the server's TRUSTED_CA_DIR." },
];

export const CHANNEL_TYPES = {
  webhook: {
    label: "Webhook",
    fields: [
      { name: "url", label: "URL", kind: "url", required: true, pattern: URL_PATTERN, placeholder: "https://example.com/hooks/pulse" },
      { name: "method", label: "Method", kind: "select", options: [["POST", "POST"], ["PUT", "PUT"]], default: "POST" },
      { name: "headers", label: "Headers", kind: "pairs", placeholder: "X-Team: ops", help: "One per line, as Name: value." },
      { name: "secret_headers", label: "Secret headers", kind: "pairs", secret: true, placeholder: "Authorization: Bearer …", help: "Sent like headers; the values are write-only." },
      { name: "secret", label: "Signing secret", kind: "password", secret: true, help: "Signs each request (X-Signature-SHA256 and Standard Webhooks' webhook-signature)." },
    ],
  },
  slack: {
    label: "Slack",
    fields: [{ name: "webhook_url", label: "Incoming webhook URL", kind: "password", secret: true, required: true, pattern: URL_PATTERN, placeholder: "https://hooks.slack.com/services/…" }],
  },
  pagerduty: {
    label: "PagerDuty",
    fields: [{ name: "integration_key", label: "Integration key", kind: "password", secret: true, required: true, help: "The Events API v2 routing key of the service." }],
  },
  teams: {
    label: "Microsoft Teams",
    fields: [
      { name: "webhook_url", label: "Webhook URL", kind: "password", secret: true, required: true, pattern: URL_PATTERN },
      { name: "format", label: "Card format", kind: "select", options: [["adaptive", "Adaptive Card"], ["messagecard", "MessageCard (legacy connector)"]], default: "adaptive" },
    ],
  },
  email: {
    label: "Email",
    fields: [
      { name: "smtp.host", group: "SMTP server", label: "SMTP host", required: true, placeholder: "smtp.example.com" },
      { name: "smtp.port", label: "SMTP port", kind: "number", min: 1, max: 65535, default: 587 },
      { name: "smtp.security", label: "Security", kind: "select", options: [["starttls", "STARTTLS"], ["tls", "TLS"], ["none", "none"]], default: "starttls" },
      { name: "smtp.username", label: "Username" },
      { name: "smtp.password", label: "Password", kind: "password", secret: true },
      { name: "smtp.from", label: "From address", kind: "email", required: true, placeholder: "pulse@example.com" },
      { name: "smtp.verify_tls", label: "Verify the server's certificate", kind: "checkbox", default: true },
      ...caFields("smtp."),
      { name: "recipients.to", group: "Recipients", label: "To", kind: "list", placeholder: "ops@example.com, oncall@example.com", help: "Comma-separated; at least one recipient in To, Cc or Bcc." },
      { name: "recipients.cc", label: "Cc", kind: "list" },
      { name: "recipients.bcc", label: "Bcc", kind: "list" },
      { name: "template.subject", group: "Message", label: "Subject template", placeholder: "[{{ severity_label }}] {{ alert_type }} on {{ device_id }}", help: "Jinja2 over the payload fields; empty keeps the default." },
      { name: "template.body", label: "Body template", kind: "textarea", rows: 4 },
    ],
  },
  snmp: {
    label: "SNMP trap",
    fields: [
      { name: "host", label: "Host", required: true, placeholder: "nms.example.com" },
      { name: "port", label: "Port", kind: "number", min: 1, max: 65535, default: 162 },
      { name: "version", label: "Version", kind: "select", options: [["2c", "2c"], ["3", "3"]], default: "2c" },
      { name: "community", label: "Community", kind: "password", secret: true, when: { version: "2c" } },
      { name: "oid_prefix", label: "OID prefix", placeholder: "1.3.6.1.4.1.99999", pattern: "\\.?[0-9]+(\\.[0-9]+)*" },
      { name: "v3.username", group: "SNMPv3 user", label: "v3 user name", when: { version: "3" } },
      { name: "v3.auth_protocol", label: "v3 authentication", kind: "select", options: [["", "none"], ["MD5", "MD5"], ["SHA", "SHA"], ["SHA256", "SHA256"], ["SHA512", "SHA512"]], when: { version: "3" } },
      { name: "v3.auth_key", label: "v3 authentication key", kind: "password", secret: true, when: { version: "3" } },
      { name: "v3.priv_protocol", label: "v3 privacy", kind: "select", options: [["", "none"], ["DES", "DES"], ["AES", "AES"], ["AES256", "AES256"]], when: { version: "3" } },
      { name: "v3.priv_key", label: "v3 privacy key", kind: "password", secret: true, when: { version: "3" } },
      { name: "v3.engine_id", label: "v3 engine id (hex)", pattern: "(0x)?[0-9A-Fa-f]+", when: { version: "3" } },
    ],
  },
  mqtt: {
    label: "MQTT",
    fields: [
      { name: "host", label: "Broker host", required: true, placeholder: "broker.example.com" },
      { name: "port", label: "Port", kind: "number", min: 1, max: 65535, default: 1883 },
      { name: "topic", label: "Topic", placeholder: "pulse/{tenant_id}/{device_id}/{alert_type}", help: "Placeholders: {tenant_id}, {device_id}, {alert_type}." },
      { name: "qos", label: "QoS", kind: "select", options: [["0", "0"], ["1", "1"], ["2", "2"]], default: "1", numeric: true },
      { name: "retain", label: "Retain messages", kind: "checkbox", default: false },
      { name: "username", group: "Authentication and TLS", label: "Username" },
      { name: "password", label: "Password", kind: "password", secret: true },
      { name: "tls", label: "TLS", kind: "checkbox", default: false },
      ...caFields(""),
    ],
  },
};

/** The fields shown for a type given the values chosen so far (SNMP shows v3 only for v3). */
export function visibleFields(channelType, chosen) {
  return (CHANNEL_TYPES[channelType]?.fields || []).filter((spec) =>
    Object.entries(spec.when || {}).every(([name, value]) => String(chosen[name] ?? "") === value),
  );
}
