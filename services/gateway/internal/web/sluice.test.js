// Unit tests of the agent's source: node --test (see suite.js).
'use strict';
require('./suite.js').run(require('./sluice.js'), 'sluice.js');
