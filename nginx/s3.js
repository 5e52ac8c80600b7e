// nginx's reads of the private bucket, in nginx (njs): no Python on an edge miss.
//
// The edge location asks the origin server (a socket in the runtime folder)
// for one slice of an object. The origin sends the store a GET signed here
// with SigV4 (`authorization`, `amzDate`: the header form, payload unsigned,
// so the Range header may vary). `checkIntact` looks at the store's answer
// before a byte of it is sent: when the store's checksum of the object (its
// ETag) is not the one the uploader recorded in its metadata
// (keys.recordedEtagHeader), the answer is dropped. It also drops the object's
// metadata and the store's own headers, which no player needs.
//
// s3_keys.js, written beside this file by nginx/render.py (mode 0600), holds
// the bucket's keys and where the bucket is.
import keys from 's3_keys.js';
import crypto from 'crypto';

const UNSIGNED = 'UNSIGNED-PAYLOAD';

function amzDate(r) {
    // nginx's cached time ($msec): the same for both headers of one request.
    const iso = new Date(Math.floor(parseFloat(r.variables.msec) * 1000)).toISOString();
    return iso.replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function hmac(key, text) {
    return crypto.createHmac('sha256', key).update(text).digest();
}

function objectPath(r) {
    // /RE….mp3 -> its path at the store (bucket and prefix included). SIDs,
    // formats and prefixes need no escaping: Settings allows none that would.
    return keys.path + r.uri;
}

function authorization(r) {
    const date = amzDate(r);
    const day = date.slice(0, 8);
    const scope = `${day}/${keys.region}/s3/aws4_request`;
    const signed = 'host;x-amz-content-sha256;x-amz-date';
    const canonical = ['GET', objectPath(r), '', `host:${keys.host}`, `x-amz-content-sha256:${UNSIGNED}`,
                       `x-amz-date:${date}`, '', signed, UNSIGNED].join('\n');
    const toSign = ['AWS4-HMAC-SHA256', date, scope,
                    crypto.createHash('sha256').update(canonical).digest('hex')].join('\n');
    const key = hmac(hmac(hmac(hmac('AWS4' + keys.secretAccessKey, day), keys.region), 's3'), 'aws4_request');
    const signature = crypto.createHmac('sha256', key).update(toSign).digest('hex');
    return `AWS4-HMAC-SHA256 Credential=${keys.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
}

function checkIntact(r) {
    const recorded = r.headersOut[keys.recordedEtagHeader];
    if ((r.status === 200 || r.status === 206) && recorded !== undefined && r.headersOut['ETag'] !== `"${recorded}"`) {
        // Nothing is sent yet: failing here closes the connection, which the edge takes
        // for a store failure (502), so the player gets the miss path and nothing is cached.
        throw new Error(`object.checksum_mismatch object=${r.uri.slice(1)} etag=${r.headersOut['ETag']} recorded=${recorded}`);
    }
    Object.keys(r.headersOut).forEach(function (name) {
        const lower = name.toLowerCase();
        if (lower.startsWith('x-amz-') || lower.startsWith('x-rgw-')) {
            delete r.headersOut[name];  // the object's metadata and the store's own headers stay here
        }
    });
}

export default {amzDate, authorization, checkIntact};
