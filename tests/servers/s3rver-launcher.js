'use strict';
// Starts the (patched, see patch-s3rver.js) s3rver with the command line of its
// own CLI; the package ships no bin/ file. Prints 'S3rver listening on ADDR:PORT'.
require('@20minutes/s3rver/lib/cli').parseAsync(process.argv);
