// The same unit tests against sluice.min.js, the file the gateway serves.
'use strict';
require('./suite.js').run(require('./sluice.min.js'), 'sluice.min.js');
