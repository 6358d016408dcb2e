-- Logto 1.6 roles have no type, and 1.6 clients give the seeded admin role (`admin-role`) to
-- users. Later Logto's migration typed every existing role `User`; the seed now does too.
-- (Machine-to-machine applications still get it through identity's `isAdmin`, which links it
-- directly.)
UPDATE roles SET type = 'User' WHERE id = 'admin-role' AND type = 'MachineToMachine';
