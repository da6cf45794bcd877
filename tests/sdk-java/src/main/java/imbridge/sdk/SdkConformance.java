package imbridge.sdk;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.doocs.im.ClientConfiguration;
import io.github.doocs.im.ImClient;
import io.github.doocs.im.model.group.GroupInfo;
import io.github.doocs.im.model.group.MemberProfile;
import io.github.doocs.im.model.message.TIMMsgElement;
import io.github.doocs.im.model.message.TIMTextMsgElement;
import io.github.doocs.im.model.request.*;
import io.github.doocs.im.model.response.*;
import io.github.doocs.im.util.HttpUtil;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.stream.Collectors;

/**
 * A whole migration sequence against the IM emulator, through the public Java server SDK
 * (io.github.doocs:im-server-sdk-java) as an independent client: accounts, profiles, friends, 1:1
 * import/send/history/unread, a group's life cycle, a group import, and deliberate errors. Every step asserts
 * IM's documented answer. Prints one line per step and a closing "sdk: N passed, M failed"; exits 1 on any
 * failure.
 *
 * <p>Environment: IM_BASE_URL (http://127.0.0.1:PORT), IM_SDKAPPID, IM_SECRET_KEY, IM_ADMIN.
 */
public final class SdkConformance {
    /** A host the SDK puts into its https URL; replaced by the emulator's base URL. */
    private static final String PLACEHOLDER_HOST = "imbridge-emulator.invalid";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The SDK's client with its base URL overridden: the SDK builds https://{domain}/v4/... itself. */
    static final class EmulatorClient extends ImClient {
        private final String base;

        EmulatorClient(String base, long sdkAppId, String identifier, String key) {
            super(sdkAppId, identifier, key, PLACEHOLDER_HOST, noRetries());
            this.base = base.replaceAll("/+$", "");
        }

        @Override
        public String getUrl(String serviceName, String command, long random) {
            String url = super.getUrl(serviceName, command, random);
            String prefix = "https://" + PLACEHOLDER_HOST;
            if (!url.startsWith(prefix)) {
                throw new IllegalStateException("unexpected SDK URL " + url);
            }
            return base + url.substring(prefix.length());
        }

        /** A raw body through the SDK's own URL, signature and transport (for request shapes it never sends). */
        JsonNode raw(String service, String command, String body) throws Exception {
            return JSON.readTree(HttpUtil.post(getUrl(service, command), body, getConfig()));
        }

        private static ClientConfiguration noRetries() {
            ClientConfiguration c = new ClientConfiguration();
            // The SDK retries non-2xx answers; IM answers 200 for every outcome, so a retry would hide a bug.
            c.setMaxRetries(0);
            return c;
        }
    }

    interface Step {
        void run() throws Exception;
    }

    private int passed;
    private int failed;

    private void step(String name, Step s) {
        try {
            s.run();
            passed++;
            System.out.println("ok    " + name);
        } catch (Throwable e) {
            failed++;
            System.out.println("FAIL  " + name + ": " + e);
        }
    }

    static void check(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    static <T> void eq(T want, T got, String what) {
        if (!Objects.equals(want, got)) {
            throw new AssertionError(what + ": want " + want + ", got " + got);
        }
    }

    static void ok(GenericResult r) {
        eq("OK", r.getActionStatus(), "ActionStatus (" + r.getErrorCode() + " " + r.getErrorInfo() + ")");
        eq(0, r.getErrorCode(), "ErrorCode");
    }

    static void code(int want, GenericResult r) {
        eq("FAIL", r.getActionStatus(), "ActionStatus");
        eq(want, r.getErrorCode(), "ErrorCode (" + r.getErrorInfo() + ")");
    }

    static void code(int want, JsonNode r) {
        eq(want, r.path("ErrorCode").asInt(-1), "ErrorCode (" + r.path("ErrorInfo").asText() + ")");
    }

    static List<TIMMsgElement> text(String t) {
        List<TIMMsgElement> body = new ArrayList<>();
        body.add(new TIMTextMsgElement(t));
        return body;
    }

    static String textOf(List<TIMMsgElement> body) {
        check(body != null && body.size() == 1 && body.get(0) instanceof TIMTextMsgElement, "one text element: " + body);
        return ((TIMTextMsgElement) body.get(0)).getMsgContent().getText();
    }

    static int now() {
        return (int) (System.currentTimeMillis() / 1000);
    }

    public static void main(String[] args) {
        String base = env("IM_BASE_URL");
        long appId = Long.parseLong(env("IM_SDKAPPID"));
        String key = env("IM_SECRET_KEY");
        String admin = env("IM_ADMIN");
        SdkConformance t = new SdkConformance();
        t.run(new EmulatorClient(base, appId, admin, key), base, appId, key, admin);
        System.out.println("sdk: " + t.passed + " passed, " + t.failed + " failed");
        System.exit(t.failed == 0 && t.passed > 0 ? 0 : 1);
    }

    private static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            System.err.println("sdk: " + name + " is not set");
            System.exit(2);
        }
        return v;
    }

    private void run(EmulatorClient im, String base, long appId, String key, String admin) {
        int t0 = now();

        // ---- accounts ----------------------------------------------------------------------------------
        step("account_import", () -> ok(im.account.accountImport(new AccountImportRequest("ann", "Ann", null))));
        step("multiaccount_import", () -> {
            MultiAccountImportResult r = im.account.multiAccountImport(
                    new MultiAccountImportRequest(List.of("bob", "cy", "dan", "eve")));
            ok(r);
            check(r.getFailAccounts() == null || r.getFailAccounts().isEmpty(), "no FailAccounts: " + r.getFailAccounts());
        });
        step("account_import with the legacy Identifier field (Go SDK shape)", () ->
                code(0, im.raw("im_open_login_svc", "account_import", "{\"Identifier\":\"gopher\",\"Nick\":\"Go\",\"FaceUrl\":\"\"}")));
        step("account_check", () -> {
            AccountCheckResult r = im.account.accountCheck(new AccountCheckRequest(List.of(
                    new AccountCheckItem("ann"), new AccountCheckItem("gopher"), new AccountCheckItem("nobody"))));
            ok(r);
            List<String> status = r.getResultItems().stream().map(AccountCheckResultItem::getAccountStatus)
                    .collect(Collectors.toList());
            eq(List.of("Imported", "Imported", "NotImported"), status, "AccountStatus");
        });
        step("account_import refuses a 33-byte UserID (70402)", () ->
                code(70402, im.account.accountImport(new AccountImportRequest("x".repeat(33)))));

        // ---- profiles ----------------------------------------------------------------------------------
        step("portrait_set", () -> ok(im.profile.portraitSet(new PortraitSetRequest("ann", List.of(
                new ProfileItem("Tag_Profile_IM_Nick", "Ann Lee"),
                new ProfileItem("Tag_Profile_IM_Gender", "Gender_Type_Female"))))));
        step("portrait_get", () -> {
            PortraitGetResult r = im.profile.portraitGet(new PortraitGetRequest(List.of("ann"),
                    List.of("Tag_Profile_IM_Nick", "Tag_Profile_IM_Gender")));
            ok(r);
            List<ProfileItem> items = r.getUserProfileItemList().get(0).getProfileItemList();
            eq("Ann Lee", items.stream().filter(i -> i.getTag().equals("Tag_Profile_IM_Nick")).findFirst()
                    .map(ProfileItem::getValue).orElse(null), "nick");
        });
        step("portrait_set for an unknown account fails (40003)", () ->
                code(40003, im.profile.portraitSet(new PortraitSetRequest("ghost", List.of(
                        new ProfileItem("Tag_Profile_IM_Nick", "x"))))));

        // ---- friends -----------------------------------------------------------------------------------
        step("friend_import", () -> {
            FriendImportResult r = im.sns.friendImport(new FriendImportRequest("ann", List.of(
                    new ImportFriendItem("bob", "AddSource_Type_Web"), new ImportFriendItem("cy", "AddSource_Type_Web"))));
            ok(r);
            eq(List.of(0, 0), r.getResultItemList().stream().map(ResultItem::getResultCode).collect(Collectors.toList()),
                    "per-friend ResultCode");
        });
        step("friend_get", () -> {
            FriendGetResult r = im.sns.friendGet(new FriendGetRequest("ann", 0));
            ok(r);
            eq(List.of("bob", "cy"), r.getUserDataItemList().stream().map(UserDataItem::getToAccount)
                    .collect(Collectors.toList()), "friends");
            eq(1, r.getCompleteFlag(), "CompleteFlag");
        });
        step("friend_import refuses an unknown friend per item (30003)", () -> {
            FriendImportResult r = im.sns.friendImport(new FriendImportRequest("ann", List.of(
                    new ImportFriendItem("ghost", "AddSource_Type_Web"))));
            eq(30003, r.getResultItemList().get(0).getResultCode(), "ResultCode");
        });

        // ---- 1:1 messages ------------------------------------------------------------------------------
        ImportMsgRequest history = new ImportMsgRequest(2, "ann", "bob", 77L, 1234L, t0 - 3600, text("history"), null);
        step("importmsg (history)", () -> ok(im.message.importMsg(history)));
        step("importmsg again is deduplicated and answers OK", () -> ok(im.message.importMsg(history)));
        step("sendmsg", () -> {
            SendMsgRequest req = new SendMsgRequest("bob", 99L, text("live"));
            req.setFromAccount("ann");
            req.setSyncOtherMachine(1);
            SendMsgResult r = im.message.sendMsg(req);
            ok(r);
            check(r.getMsgKey() != null && !r.getMsgKey().isEmpty(), "MsgKey");
            check(r.getMsgTime() != null && r.getMsgTime() >= t0, "MsgTime");
        });
        step("admin_getroammsg", () -> {
            AdminRoamMsgResult r = im.message.getRoamMsg(new AdminGetRoamMsgRequest("ann", "bob", 20, 0, now() + 60));
            ok(r);
            eq(1, r.getComplete(), "Complete");
            eq(List.of("history", "live"), r.getMsgList().stream().map(m -> textOf(m.getMsgBody()))
                    .collect(Collectors.toList()), "history, oldest first");
        });
        step("get_c2c_unread_msg_num (history adds no unread)", () -> {
            C2cUnreadMsgNumResult r = im.message.getC2cUnreadMsgNum(new GetC2cUnreadMsgRequest("bob"));
            ok(r);
            eq(1, r.getAllC2cUnreadMsgNum(), "AllC2CUnreadMsgNum");
        });
        step("admin_set_msg_read", () -> {
            ok(im.message.setMsgRead(new AdminSetMsgReadRequest("bob", "ann")));
            eq(0, im.message.getC2cUnreadMsgNum(new GetC2cUnreadMsgRequest("bob")).getAllC2cUnreadMsgNum(), "unread");
        });
        step("importmsg refuses SyncFromOldSystem 3 (90030)", () ->
                code(90030, im.message.importMsg(new ImportMsgRequest(3, "ann", "bob", 78L, 1L, t0 - 60, text("x"), null))));
        step("sendmsg to an unknown account fails", () -> {
            SendMsgRequest req = new SendMsgRequest("ghost", 5L, text("x"));
            req.setFromAccount("ann");
            SendMsgResult r = im.message.sendMsg(req);
            eq("FAIL", r.getActionStatus(), "ActionStatus");
            check(r.getErrorCode() != 0, "a non-zero ErrorCode");
        });

        // ---- a group's life cycle ----------------------------------------------------------------------
        step("create_group", () -> {
            CreateGroupRequest req = new CreateGroupRequest("Public", "team");
            req.setGroupId("sdk-team");
            req.setOwnerAccount("ann");
            CreateGroupResult r = im.group.createGroup(req);
            ok(r);
            eq("sdk-team", r.getGroupId(), "GroupId");
        });
        // The SDK's SendGroupMsgResult maps `msgSeq` (lower case) where IM documents and sends `MsgSeq`, so the
        // SDK always reads null there; the seq is checked on the raw answer and in the history below.
        step("send_group_msg", () -> {
            SendGroupMsgRequest req = new SendGroupMsgRequest("sdk-team", 7L, text("hello"));
            req.setFromAccount("ann");
            SendGroupMsgResult r = im.group.sendGroupMsg(req);
            ok(r);
            check(r.getMsgTime() != null && r.getMsgTime() >= t0, "MsgTime " + r.getMsgTime());
        });
        step("send_group_msg with the same Random is deduplicated (the first send's MsgSeq)", () -> {
            JsonNode r = im.raw("group_open_http_svc", "send_group_msg", "{\"GroupId\":\"sdk-team\",\"Random\":7,"
                    + "\"From_Account\":\"ann\",\"MsgBody\":[{\"MsgType\":\"TIMTextElem\",\"MsgContent\":{\"Text\":\"hello\"}}]}");
            code(0, r);
            eq(1, r.path("MsgSeq").asInt(), "MsgSeq");
        });
        step("add_group_member", () -> {
            AddGroupMemberResult r = im.group.addGroupMember(new AddGroupMemberRequest("sdk-team", List.of(
                    new MemberRequestItem("bob"), new MemberRequestItem("cy"), new MemberRequestItem("ghost"))));
            ok(r);
            eq(List.of(1, 1, 0), r.getMemberList().stream().map(MemberResultItem::getResult)
                    .collect(Collectors.toList()), "Result per member");
        });
        step("modify_group_base_info", () -> {
            ModifyGroupBaseInfoRequest req = new ModifyGroupBaseInfoRequest("sdk-team");
            req.setName("team two");
            req.setMuteAllMember("On");
            ok(im.group.modifyGroupBaseInfo(req));
        });
        step("get_group_info", () -> {
            GetGroupInfoResult r = im.group.getGroupInfo(new GetGroupInfoRequest(List.of("sdk-team")));
            ok(r);
            GroupInfo g = r.getGroupInfo().get(0);
            eq("team two", g.getName(), "Name");
            eq("On", g.getMuteAllMember(), "MuteAllMember");
            eq(3, g.getMemberNum(), "MemberNum");
            eq("ann", g.getOwnerAccount(), "Owner_Account");
        });
        step("get_group_member_info", () -> {
            GetGroupMemberInfoResult r = im.group.getGroupMemberInfo(new GetGroupMemberInfoRequest("sdk-team"));
            ok(r);
            eq(3, r.getMemberNum(), "MemberNum");
            eq(List.of("ann", "bob", "cy"), r.getMemberList().stream().map(MemberProfile::getMemberAccount)
                    .collect(Collectors.toList()), "members in join order");
            eq(List.of("Owner", "Member", "Member"), r.getMemberList().stream().map(MemberProfile::getRole)
                    .collect(Collectors.toList()), "roles");
        });
        step("delete_group_member", () -> ok(im.group.deleteGroupMember(
                new DeleteGroupMemberRequest("sdk-team", List.of("cy")))));
        step("group_msg_get_simple after member changes parses (notices carry no element)", () -> {
            GroupMsgGetSimpleResult r = im.group.groupMsgGetSimple(new GroupMsgGetSimpleRequest("sdk-team", 20));
            ok(r);
            List<RspMsgItem> list = r.getRspMsgList();
            eq(List.of(3L, 2L, 1L), list.stream().map(RspMsgItem::getMsgSeq).collect(Collectors.toList()), "MsgSeq");
            eq(List.of(1, 1, 0), list.stream().map(RspMsgItem::getIsSystemMsg).collect(Collectors.toList()), "IsSystemMsg");
            check(list.get(0).getMsgBody().isEmpty() && list.get(1).getMsgBody().isEmpty(), "notices have no element");
            eq("hello", textOf(list.get(2).getMsgBody()), "the message");
        });
        step("group_msg_get_simple with ReqMsgSeq 0 reads from the newest", () -> {
            GroupMsgGetSimpleRequest req = new GroupMsgGetSimpleRequest("sdk-team", 20);
            req.setReqMsgSeq(0L);
            GroupMsgGetSimpleResult r = im.group.groupMsgGetSimple(req);
            ok(r);
            eq(3, r.getRspMsgList().size(), "entries");
        });
        step("destroy_group", () -> {
            ok(im.group.destroyGroup(new DestroyGroupRequest("sdk-team")));
            // The SDK's GroupInfo model has no per-group ErrorCode: read that answer raw.
            JsonNode r = im.raw("group_open_http_svc", "get_group_info", "{\"GroupIdList\":[\"sdk-team\"]}");
            code(0, r);
            eq(10010, r.path("GroupInfo").path(0).path("ErrorCode").asInt(), "per-group ErrorCode");
        });
        step("send_group_msg to a destroyed group fails (10010)", () ->
                code(10010, im.group.sendGroupMsg(new SendGroupMsgRequest("sdk-team", 8L, text("late")))));

        // ---- a group import ----------------------------------------------------------------------------
        int created = t0 - 7200;
        step("import_group", () -> {
            ImportGroupRequest req = new ImportGroupRequest("Private", "history");
            req.setGroupId("sdk-hist");
            req.setOwnerAccount("ann");
            req.setCreateTime(created);
            ImportGroupResult r = im.group.importGroup(req);
            ok(r);
            eq("sdk-hist", r.getGroupId(), "GroupId");
        });
        step("import_group_member", () -> {
            ImportGroupMemberResult r = im.group.importGroupMember(new ImportGroupMemberRequest("sdk-hist", List.of(
                    new MemberItem("bob", null, created + 100, null), new MemberItem("cy", "Admin", null, null),
                    new MemberItem("ghost"))));
            ok(r);
            eq(List.of(1, 1, 0), r.getMemberList().stream().map(MemberListResultItem::getResult)
                    .collect(Collectors.toList()), "Result per member");
        });
        List<GroupMsgItem> msgs = List.of(new GroupMsgItem("ann", created + 200, 11L, text("h1")),
                new GroupMsgItem("bob", created + 300, 12L, text("h2")));
        step("import_group_msg", () -> {
            ImportGroupMsgResult r = im.group.importGroupMsg(new ImportGroupMsgRequest("sdk-hist", msgs));
            ok(r);
            eq(List.of(0, 0), r.getImportMsgResult().stream().map(ImportMsgResultItem::getResult)
                    .collect(Collectors.toList()), "Result");
            eq(List.of(1L, 2L), r.getImportMsgResult().stream().map(ImportMsgResultItem::getMsgSeq)
                    .collect(Collectors.toList()), "MsgSeq");
        });
        step("import_group_msg replayed fails per message instead of duplicating (10004)", () -> {
            ImportGroupMsgResult r = im.group.importGroupMsg(new ImportGroupMsgRequest("sdk-hist", msgs));
            ok(r);
            eq(List.of(10004, 10004), r.getImportMsgResult().stream().map(ImportMsgResultItem::getResult)
                    .collect(Collectors.toList()), "Result");
        });
        step("set_unread_msg_num", () -> {
            ok(im.group.setUnreadMsgNum(new SetUnreadMsgNumRequest("sdk-hist", "bob", 1)));
            GetGroupMemberInfoRequest req = new GetGroupMemberInfoRequest("sdk-hist");
            req.setMemberInfoFilter(List.of("MsgSeq"));
            GetGroupMemberInfoResult r = im.group.getGroupMemberInfo(req);
            ok(r);
            MemberProfile bob = r.getMemberList().stream().filter(m -> m.getMemberAccount().equals("bob")).findFirst()
                    .orElseThrow(() -> new AssertionError("bob is a member"));
            eq(1L, bob.getMsgSeq(), "bob's read position (2 messages, 1 unread)");
        });
        step("group_msg_get_simple returns the imported history", () -> {
            GroupMsgGetSimpleResult r = im.group.groupMsgGetSimple(new GroupMsgGetSimpleRequest("sdk-hist", 20));
            ok(r);
            List<RspMsgItem> list = r.getRspMsgList();
            eq(List.of(12L, 11L), list.stream().map(RspMsgItem::getMsgRandom).collect(Collectors.toList()), "MsgRandom");
            eq(List.of(created + 300, created + 200), list.stream().map(RspMsgItem::getMsgTimeStamp)
                    .collect(Collectors.toList()), "MsgTimeStamp = SendTime");
            eq(List.of("h2", "h1"), list.stream().map(m -> textOf(m.getMsgBody())).collect(Collectors.toList()), "bodies");
        });
        step("import_group with CreateTime 0 is created now (Go SDK shape)", () -> {
            ImportGroupRequest req = new ImportGroupRequest("Public", "zero");
            req.setGroupId("sdk-zero");
            req.setOwnerAccount("ann");
            req.setCreateTime(0);
            ok(im.group.importGroup(req));
            GroupInfo g = im.group.getGroupInfo(new GetGroupInfoRequest(List.of("sdk-zero"))).getGroupInfo().get(0);
            check(g.getCreateTime() >= t0, "CreateTime " + g.getCreateTime() + " is the request time, not 1970");
            ImportGroupMemberResult r = im.group.importGroupMember(new ImportGroupMemberRequest("sdk-zero", List.of(
                    new MemberItem("bob", null, t0 - 3600, null))));
            eq(0, r.getMemberList().get(0).getResult(), "a JoinTime before creation is refused");
        });
        step("import_group refuses AVChatRoom (10007)", () ->
                code(10007, im.group.importGroup(new ImportGroupRequest("AVChatRoom", "live"))));
        step("get_appid_group_list", () -> {
            GetAppIdGroupListResult r = im.group.getAppIdGroupList(new GetAppIdGroupListRequest(100, 0L, null));
            ok(r);
            List<String> ids = r.getGroupIdList().stream().map(GroupIdItem::getGroupId).collect(Collectors.toList());
            eq(List.of("sdk-hist", "sdk-zero"), ids, "groups in creation order");
            eq(0L, r.getNext(), "Next at the end");
        });

        // ---- deliberate credential errors --------------------------------------------------------------
        step("a UserSig signed with another key fails (70009)", () -> {
            EmulatorClient wrong = new EmulatorClient(base, appId, admin, key.substring(1) + "0");
            code(70009, wrong.account.accountCheck(new AccountCheckRequest(List.of(new AccountCheckItem("ann")))));
        });
        step("a non-admin identifier fails (70403)", () -> {
            EmulatorClient user = new EmulatorClient(base, appId, "ann", key);
            code(70403, user.account.accountImport(new AccountImportRequest("mallory")));
        });
    }
}
