"""Django's PostgreSQL backend with the outage breaker of thisdb_site.outages (ENGINE
"thisdb_site.postgresql", set by settings for a postgres DATABASE_URL)."""
