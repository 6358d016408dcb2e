"""Rate limits for load generators (make bench, make chaos).

Every client of the bench comes from one address and signs one user in hundreds of times: the
rate limits (identity's, see its README) are raised, not turned off, so their cost (one
statement per password check) stays in the measurement. Benchmarking a running stack (--url)
needs the same settings there.
"""

BENCH_RATE_LIMITS = {
    "TESSERA_RATE_LIMIT_SIGN_IN_IP": "1000000/1m",
    "TESSERA_RATE_LIMIT_SIGN_IN_IP_ACCOUNT": "1000000/1m",
    "TESSERA_RATE_LIMIT_TOKEN_FAILURES_IP": "1000000/1m",
    # Verification codes (experience): the per-address limits raised; the per-recipient ones
    # keep their defaults (the code sign-in sends each code to a recipient of its own), and
    # the resend cooldown, which the dev stack turns off, is back at its production value.
    "TESSERA_VERIFICATION_CODE_SEND_PER_IP": "1000000/1m",
    "TESSERA_VERIFICATION_CODE_VERIFY_PER_IP": "1000000/1m",
    "TESSERA_VERIFICATION_CODE_RESEND_COOLDOWN": "1/60s",
}
