-- An interaction's new password is kept as identity's hash of it ({digest, algorithm, ...});
-- interactions stored before held it in clear: drop those (the user gives it again).
UPDATE interactions SET profile = profile - 'password'
WHERE profile ? 'password' AND jsonb_typeof(profile -> 'password') = 'string';
