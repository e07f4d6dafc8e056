import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { ROOT } from "../rehearsal/program";

/** The README as a new user meets it: the commands it gives are the project's own, and its code compiles. */

const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

/** The fenced blocks of a language, in order. */
function blocks(language: string): string[] {
    return [...readme.matchAll(new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g"))].map((match) => match[1]);
}

describe("the README", () => {
    it("quotes the reuse example exactly as examples/reuse.ts, which tsc compiles with the project", () => {
        const example = fs.readFileSync(path.join(ROOT, "examples", "reuse.ts"), "utf8");
        assert.ok(blocks("ts").includes(example), "a ```ts block equal to examples/reuse.ts");
    });

    it("runs every test with the command CI runs after a clean install", () => {
        assert.ok(blocks("sh").some((block) => block.trim() === "npm ci && npm test"));
        assert.match(fs.readFileSync(path.join(ROOT, ".ci", "run"), "utf8"), /^npm ci\b[\s\S]*^npm test$/m);
    });

    it("deploys the dev stack on the local backend, creating the stack if missing", () => {
        const main = blocks("sh").find((block) => block.includes("pulumi up"));
        assert.ok(main, "a main-job command");
        for (const step of ["npm ci", "pulumi login --local", "pulumi stack select --create dev", "pulumi up --stack dev --yes", "PULUMI_CONFIG_PASSPHRASE"]) {
            assert.ok(main.includes(step), `the main-job command has ${step}`);
        }
    });

    it("names the one command that creates the spot service-linked role", () => {
        assert.ok(readme.includes("aws iam create-service-linked-role --aws-service-name spot.amazonaws.com"));
    });
});
