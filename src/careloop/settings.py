"""CareLoop settings: one module, configured by CARELOOP_* environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from careloop.kit import clock as _clock

PACKAGE_DIR = Path(__file__).resolve().parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"CARELOOP_{name}", default)


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# Where runtime state lives: the SQLite file, generated keys, uploads.
VAR_DIR = Path(env("VAR_DIR") or Path.cwd() / "var").resolve()

DEBUG = env_bool("DEBUG", False)
# Production mode refuses generated or default secrets; the embedded default is not production.
PRODUCTION = env_bool("PRODUCTION", False)

INSECURE_KEYS = {"", "changeme", "secret", "django-insecure", "careloop"}


def _secret_from_file(filename: str, nbytes: int, variable: str) -> str:
    """Read a key under VAR_DIR, generating it on first run (never in production)."""
    path = VAR_DIR / filename
    if path.exists():
        return path.read_text().strip()
    if PRODUCTION:
        raise ImproperlyConfigured(f"CARELOOP_{variable} must be set in production mode.")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


# The settable clock (demos, training, acceptance checks): never in production.
if env("FAKE_NOW"):
    if PRODUCTION:
        raise ImproperlyConfigured("CARELOOP_FAKE_NOW is refused in production mode.")
    try:
        _clock.install(_clock.configure_from_env(VAR_DIR))
    except _clock.ClockError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
else:
    _clock.install(None)

SECRET_KEY = env("SECRET_KEY") or ""
if PRODUCTION and (SECRET_KEY.strip().lower() in INSECURE_KEYS or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "CARELOOP_SECRET_KEY is missing, a default value, or shorter than 32 characters; "
        "production mode refuses to start with it."
    )
if not SECRET_KEY:
    SECRET_KEY = _secret_from_file("secret_key", 48, "SECRET_KEY")

# Field-encryption keys live outside the database: a comma-separated list, newest first.
FIELD_KEYS = [k for k in (env("FIELD_KEYS") or "").split(",") if k.strip()]
if not FIELD_KEYS:
    FIELD_KEYS = [_secret_from_file("field_key", 32, "FIELD_KEYS")]
# Keyed hashing for exact-match search on encrypted fields (blind index).
INDEX_KEY = env("INDEX_KEY") or _secret_from_file("index_key", 32, "INDEX_KEY")

# The address patients' message links point to (the portal as patients reach it).
PUBLIC_URL = env("PUBLIC_URL") or "http://127.0.0.1:8000"

ALLOWED_HOSTS = [
    h.strip() for h in (env("ALLOWED_HOSTS") or "127.0.0.1,localhost,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in (env("CSRF_TRUSTED_ORIGINS") or "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "ninja",
    "careloop.kit",
    "careloop.accounts",
    "careloop.audit",
    "careloop.patients",
    "careloop.careplans",
    "careloop.channels",
    "careloop.reminders",
    "careloop.observations",
    "careloop.hl7v2",
    "careloop.alerts",
    "careloop.appointments",
    "careloop.portal",
    "careloop.messaging",
    "careloop.questionnaires",
    "careloop.education",
    "careloop.engagement",
    "careloop.fhir",
    "careloop.onboarding",
    "careloop.subscriptions",
    "careloop.analytics",
    "careloop.analytics.reports",
    "careloop.segments",
    "careloop.risk",
    "careloop.sendtime",
    "careloop.experiments",
    "careloop.insights",
    "careloop.simulator",
    "careloop.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "careloop.accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "careloop.kit.middleware.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "careloop.urls"
WSGI_APPLICATION = "careloop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "careloop.web.context.navigation",
            ],
        },
    },
]

DEFAULT_SQLITE = VAR_DIR / "careloop.sqlite3"
DATABASE_URL = env("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers and one writer work side by side; IMMEDIATE takes the write lock
        # at BEGIN so that two writers never deadlock on lock upgrade.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
            " PRAGMA busy_timeout=10000;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    if str(DATABASES["default"]["NAME"]) != ":memory:":
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
if env("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.Staff"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "patients:list"
LOGOUT_REDIRECT_URL = "login"

# Sessions end after 30 idle minutes (every request renews the cookie).
SESSION_IDLE_SECONDS = int(env("SESSION_IDLE_SECONDS") or 1800)
SESSION_COOKIE_AGE = SESSION_IDLE_SECONDS
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("BEHIND_TLS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000
    SECURE_SSL_REDIRECT = True

# Login throttling: failures per username (and per address) inside the window lock it out.
LOGIN_MAX_FAILURES = int(env("LOGIN_MAX_FAILURES") or 5)
LOGIN_FAILURE_WINDOW_SECONDS = int(env("LOGIN_FAILURE_WINDOW_SECONDS") or 900)
LOGIN_MAX_FAILURES_PER_ADDRESS = int(env("LOGIN_MAX_FAILURES_PER_ADDRESS") or 30)

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE") or "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Front-end packages from npm are copied here by `make assets`; never committed.
VENDOR_STATIC_DIR = Path(env("VENDOR_STATIC_DIR") or Path.cwd() / "var" / "vendor")
STATICFILES_DIRS = [("vendor", VENDOR_STATIC_DIR)] if VENDOR_STATIC_DIR.exists() else []
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

MEDIA_ROOT = VAR_DIR / "uploads"
MAX_UPLOAD_BYTES = int(env("MAX_UPLOAD_BYTES") or 10 * 1024 * 1024)
# Files of readings (CSV, device exports, an Apple Health export.zip) uploaded on the import page;
# larger ones go through `careloop import-readings` (`careloop serve` takes bodies up to 64 MB).
IMPORT_MAX_BYTES = int(env("IMPORT_MAX_BYTES") or 60 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("MAX_BODY_BYTES") or 2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}

AUDIT_RETENTION_DAYS = int(env("AUDIT_RETENTION_DAYS") or 365)

# Appointments: how many days ahead clinic slots are opened, and how many places before their
# turn a waiting patient is told that it is near.
APPOINTMENT_SLOT_DAYS = int(env("APPOINTMENT_SLOT_DAYS") or 28)
QUEUE_NEAR_POSITIONS = int(env("QUEUE_NEAR_POSITIONS") or 3)

# Analytics: how long after its due time a worklist task may be closed and still count as
# completed on time (metrics.md, completion rate).
ANALYTICS_TASK_GRACE_HOURS = int(env("ANALYTICS_TASK_GRACE_HOURS") or 24)
# 规范管理率: follow-ups a year a managed patient needs to count as managed per the standard.
ANALYTICS_CHINA_FOLLOWUPS_PER_YEAR = int(env("ANALYTICS_CHINA_FOLLOWUPS_PER_YEAR") or 4)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL") or "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "waitress": {"level": "WARNING"},
    },
}

NINJA_PAGINATION_MAX_LIMIT = 200
