/* keys.h: fixed test keys for the fuzz harnesses (generated for this tree,
 * used nowhere else). Fixed rather than generated per run so a corpus file
 * means the same token on every replay. */
#ifndef FUZZ_KEYS_H
#define FUZZ_KEYS_H

#define FUZZ_HS_SECRET "sk_secret_00112233445566778899aabbccddeeff"

static const char FUZZ_RS_PRIV[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCf6vh7kfQe7ETA\n"
    "vhbvCCSDU9z0UsoHAwend+ZKv+XIvCApXj3PibPCrDvnw8YblxsmnR8XBXovl9A7\n"
    "vJBkGnvfHUffW+FXd+FSXb27MLsKbVYslmQkcUqmcvqa9IDz4p2E+TTXQWkTtTSb\n"
    "olztxZD7kLJJnkTljSTlE6GuSh8Pxv2mbYMEKTmGaSDy8vz/29UwlVE69b5GkaF2\n"
    "wPFDxDUslF0kSwn+XkMVBf3XWp5aXOOKro5RtOC3ItTBujBZHRW4AC6e3y88wlKR\n"
    "xM6Yp8RHmqFrhFHa5bUNU6BkaeE2MWkASLsBS/lRfM6RIWOqf9lgFkOPagEbE+Gp\n"
    "rdwXSWIJAgMBAAECggEAGhGAWIpqEFlk+sNx8xyxcQwMbnKJdtumVYUc0A4Ym+CY\n"
    "4I15h3mTyVXwvP7jri8zcJe3z/WnXZdCjV5Xbk4H58663tz4Lp0+6IGZ8mgG8XPx\n"
    "0npgkDU8nUYMdpKJa9hC48CI/dbulVUaYo101xi34d5MReZsJjxcKZCJ8GKqThSY\n"
    "2QMOEswySwbkq/uVjLEMCPINljWt28JmkmeXg7Iv3V9bn9c4y1NnDEGkd6sZxGbF\n"
    "q10p36CG1EZq/uTe0RkssRJttcChYsO0Iq0UdtPRiEqkDG/fKA3d1JQJitO/loDS\n"
    "RXob0Iu6iAIXlsNy+oVTeeA/aY/7ZfOFX2e4naeCJQKBgQDQirCe04tDs6wfaOyR\n"
    "QFV08Wk0/MW5DXawUBYER60+5c2o7no4iDo0C7Wx8qW+ueA3zN1m0YV7XDTKIbdY\n"
    "R2Uuryo7NMNTshasFQ7+4149DV4p58ZlTbrR171A+vjqQp8TpW4X+xXtjRvlxApY\n"
    "D+SxWa4dRhIoxC126N0lIDI/xQKBgQDET4eYnvWBhtHigR9uZTmYCcf8ucHQaSBZ\n"
    "gen0puKk1nCCkQ66jU1X9QroLtVqn2z6xHDTCXzyR2NnkCUeIAMpmmUB9iajM6jd\n"
    "+ENQYmMnXKR+MseYxHkWNBAcz4iYDY4uaIWM0zekxQEuj2WjKDNcnlA0MH8OGHFv\n"
    "YsDWwTgZdQKBgAscmLSdyPnehPlXeeNzbhpBEr4ECfUGRqC2Y7Xuq8iCLicmLdT9\n"
    "TTygsxm8OCClftD6VYG5AEfGbfmnOkG17CpEoxdshEvdXV/l71qdetP99lp9QxD6\n"
    "x02PFUJ1HPY+foNpeShF9LEnp6jifTqb/i+E+8YLicQqT9HaLo5f3M2RAoGAUrNS\n"
    "Y2hr8tIyL2LINACu368XMg+rZ7ox56NERU3c4yZ3pXmoo8yNTcWsf53jSJS7G3WQ\n"
    "Nkej/Ik4hlOCX4uK6YbikI37PvuvYzuIWB/qt5Vess9/qIr0m/b45rpDSBNF16Uu\n"
    "xeHhaieYVN4SKkbwRE9paGMZ031WpF8M8CvcD1UCgYATuJJZhO/OyzJKqj6uPOaE\n"
    "5SgrxWy7oQlNhxG2r0HossgPLaqReVhgQA7IurlymHuY+HZb7X2d3ssRyPG+GDB2\n"
    "soh75SJGBs5Dn8LN+H6X8FYohsyErg07hfriko23Z1EgGm/LD1RCnejcgTzQQvB6\n"
    "RHRsWS5smfr1f3RwPDDM0A==\n"
    "-----END PRIVATE KEY-----\n";
static const char FUZZ_RS_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAn+r4e5H0HuxEwL4W7wgk\n"
    "g1Pc9FLKBwMHp3fmSr/lyLwgKV49z4mzwqw758PGG5cbJp0fFwV6L5fQO7yQZBp7\n"
    "3x1H31vhV3fhUl29uzC7Cm1WLJZkJHFKpnL6mvSA8+KdhPk010FpE7U0m6Jc7cWQ\n"
    "+5CySZ5E5Y0k5ROhrkofD8b9pm2DBCk5hmkg8vL8/9vVMJVROvW+RpGhdsDxQ8Q1\n"
    "LJRdJEsJ/l5DFQX911qeWlzjiq6OUbTgtyLUwbowWR0VuAAunt8vPMJSkcTOmKfE\n"
    "R5qha4RR2uW1DVOgZGnhNjFpAEi7AUv5UXzOkSFjqn/ZYBZDj2oBGxPhqa3cF0li\n"
    "CQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
static const char FUZZ_ES_PRIV[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6eKEeuHHXn5O3pL1\n"
    "Mmi9qtjtjZSLLEZ2fclteOma90KhRANCAASRPHyHvunrFhZ6CZF4Gj8TAC0NN5d8\n"
    "1gGI1jkdI+2ribhd6ueYQQkPGYQAQOShm602SuBiGZnJ3YZ1WnTHPeGZ\n"
    "-----END PRIVATE KEY-----\n";
static const char FUZZ_ES_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEkTx8h77p6xYWegmReBo/EwAtDTeX\n"
    "fNYBiNY5HSPtq4m4XernmEEJDxmEAEDkoZutNkrgYhmZyd2GdVp0xz3hmQ==\n"
    "-----END PUBLIC KEY-----\n";

#endif
