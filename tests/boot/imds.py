"""IMDSv2 stand-in for the boot path test, listening on 169.254.169.254:80 inside a network namespace.

PUT /latest/api/token (with the TTL header) gives a token; GET /latest/meta-data/<path> answers only
with that token, as IMDSv2 with `httpTokens: required` does. With --broken, tokens are refused.
"""
import argparse
import http.server
import secrets

parser = argparse.ArgumentParser()
parser.add_argument("--instance-id", required=True)
parser.add_argument("--zone", required=True)
parser.add_argument("--life-cycle", required=True, choices=["spot", "on-demand"])
parser.add_argument("--broken", action="store_true", help="refuse every token request")
args = parser.parse_args()

TOKEN = secrets.token_hex(16)
METADATA = {
    "instance-id": args.instance_id,
    "placement/availability-zone": args.zone,
    "instance-life-cycle": args.life_cycle,
}


class MetadataService(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body=""):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        if self.path != "/latest/api/token" or "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers:
            self.answer(400)
        elif args.broken:
            self.answer(403, "Forbidden")
        else:
            self.answer(200, TOKEN)

    def do_GET(self):
        prefix = "/latest/meta-data/"
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self.answer(401)
        elif not self.path.startswith(prefix) or self.path[len(prefix):] not in METADATA:
            self.answer(404)
        else:
            self.answer(200, METADATA[self.path[len(prefix):]])


http.server.HTTPServer(("169.254.169.254", 80), MetadataService).serve_forever()
