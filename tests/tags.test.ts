import * as assert from "assert";
import { instanceNameTag, instanceTags, zoneSuffix } from "../handler/tags";

describe("the tag contract", () => {
    it("names an instance after its zone's letter, as the seed did", () => {
        assert.strictEqual(instanceNameTag("Prometheus", "us-east-2a", "us-east-2"), "Prometheus-A");
        assert.strictEqual(zoneSuffix("us-west-2-lax-1a", "us-west-2"), "LAX-1A");
        assert.throws(() => zoneSuffix("eu-west-1a", "us-east-2"), /not a zone of region us-east-2/);
    });

    it("tags a handler launch with the instance it replaces", () => {
        assert.deepStrictEqual(instanceTags({ instanceName: "web", stack: "p/s", zone: "us-east-2b", region: "us-east-2", launchedBy: "handler", replaces: "i-0abc0abc0abc0abc0" }), {
            Name: "web-B",
            "spot-availability:stack": "p/s",
            "spot-availability:zone": "us-east-2b",
            "spot-availability:launched-by": "handler",
            "spot-availability:replaces": "i-0abc0abc0abc0abc0",
        });
    });
});
